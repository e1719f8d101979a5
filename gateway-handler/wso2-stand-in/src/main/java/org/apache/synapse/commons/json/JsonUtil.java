/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signature read from wso2/wso2-synapse, modules/commons/src/main/java/org/apache/synapse/
 * commons/json/JsonUtil.java, tags v4.0.0-wso2v262 and v2.1.7-wso2v227: "public static OMElement
 * getNewJsonPayload(MessageContext messageContext, String jsonString, boolean removeChildren,
 * boolean addAsNewFirstChild) throws AxisFault" (MessageContext is Axis2's).
 */
package org.apache.synapse.commons.json;

import org.apache.axiom.om.OMElement;
import org.apache.axis2.AxisFault;
import org.apache.axis2.context.MessageContext;

public final class JsonUtil {
    private JsonUtil() {}

    public static OMElement getNewJsonPayload(MessageContext messageContext, String jsonString,
            boolean removeChildren, boolean addAsNewFirstChild) throws AxisFault {
        throw new UnsupportedOperationException("stand-in");
    }
}
