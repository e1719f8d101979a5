/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signature read from wso2/wso2-synapse, modules/transports/core/nhttp/src/main/java/org/apache/
 * synapse/transport/passthru/util/RelayUtils.java, tags v4.0.0-wso2v262, v4.0.0-wso2v20 and
 * v2.1.7-wso2v227: "public static void discardRequestMessage(MessageContext msgContext) throws
 * AxisFault" (the non-deprecated successor of consumeAndDiscardMessage).
 */
package org.apache.synapse.transport.passthru.util;

import org.apache.axis2.AxisFault;
import org.apache.axis2.context.MessageContext;

public final class RelayUtils {
    private RelayUtils() {}

    public static void discardRequestMessage(MessageContext msgContext) throws AxisFault {
        throw new UnsupportedOperationException("stand-in");
    }
}
