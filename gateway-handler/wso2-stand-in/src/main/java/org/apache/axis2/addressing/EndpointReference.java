/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Axis2's org.apache.axis2.addressing.EndpointReference (a class, modules/kernel/src/org/apache/
 * axis2/addressing/EndpointReference.java); vigie only passes null to MessageContext.setTo.
 */
package org.apache.axis2.addressing;

public class EndpointReference implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
}
