/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signatures read from wso2/wso2-synapse, modules/core/src/main/java/org/apache/synapse/
 * SynapseHandler.java, tags v4.0.0-wso2v262 and v2.1.7-wso2v227 (both declare getName/setName).
 */
package org.apache.synapse;

import java.util.Map;

public interface SynapseHandler {
    boolean handleRequestInFlow(MessageContext synCtx);

    boolean handleRequestOutFlow(MessageContext synCtx);

    boolean handleResponseInFlow(MessageContext synCtx);

    boolean handleResponseOutFlow(MessageContext synCtx);

    void addProperty(String name, Object value);

    @SuppressWarnings("rawtypes")
    Map getProperties();

    String getName();

    void setName(String name);
}
