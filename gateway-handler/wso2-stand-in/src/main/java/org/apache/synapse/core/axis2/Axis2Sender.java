/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signature read from wso2/wso2-synapse, modules/core/src/main/java/org/apache/synapse/core/
 * axis2/Axis2Sender.java, tag v4.0.0-wso2v262: "public static void sendBack(
 * org.apache.synapse.MessageContext smc)" (it runs every handler's handleResponseOutFlow).
 */
package org.apache.synapse.core.axis2;

public final class Axis2Sender {
    private Axis2Sender() {}

    public static void sendBack(org.apache.synapse.MessageContext smc) {
        throw new UnsupportedOperationException("stand-in: only WSO2's Synapse can send");
    }
}
