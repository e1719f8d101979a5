/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signatures read from wso2/wso2-synapse, modules/core/src/main/java/org/apache/synapse/
 * MessageContext.java, tags v4.0.0-wso2v262 (APIM 4.6) and v2.1.7-wso2v227 (APIM 4.0).
 */
package org.apache.synapse;

import java.util.Set;
import org.apache.axis2.addressing.EndpointReference;

public interface MessageContext {
    Object getProperty(String key);

    void setProperty(String key, Object value);

    @SuppressWarnings("rawtypes")
    Set getPropertyKeySet();

    void setTo(EndpointReference reference);

    void setResponse(boolean b);

    boolean isResponse();
}
