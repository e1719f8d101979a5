/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signatures read from wso2/wso2-synapse, modules/core/src/main/java/org/apache/synapse/
 * ExtendedSynapseHandler.java, tags v4.0.0-wso2v262 and v2.1.7-wso2v227.
 */
package org.apache.synapse;

public interface ExtendedSynapseHandler extends SynapseHandler {
    boolean handleServerInit();

    boolean handleServerShutDown();

    boolean handleArtifactDeployment(String artifactName, String artifactType, String startTime);

    boolean handleArtifactUnDeployment(String artifactName, String artifactType, String unDeployTime);

    boolean handleError(MessageContext synCtx);
}
