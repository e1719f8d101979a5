/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signatures read from wso2/wso2-synapse, modules/core/src/main/java/org/apache/synapse/core/
 * axis2/Axis2MessageContext.java, tag v4.0.0-wso2v262: "public class Axis2MessageContext
 * implements MessageContext" and "public org.apache.axis2.context.MessageContext
 * getAxis2MessageContext()". Declared abstract here (only instances made by Synapse exist).
 */
package org.apache.synapse.core.axis2;

import org.apache.synapse.MessageContext;

public abstract class Axis2MessageContext implements MessageContext {
    public abstract org.apache.axis2.context.MessageContext getAxis2MessageContext();
}
