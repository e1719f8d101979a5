/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * WSO2 ships Axis2 as org.apache.axis2.wso2:axis2:1.6.1-wso2vNNN (wso2-synapse v4.0.0-wso2v262
 * pins 1.6.1-wso2v111); org.apache.axis2.AxisFault extends java.rmi.RemoteException there as in
 * Apache Axis2 (modules/kernel/src/org/apache/axis2/AxisFault.java).
 */
package org.apache.axis2;

import java.rmi.RemoteException;

public class AxisFault extends RemoteException {
    private static final long serialVersionUID = 1L;

    public AxisFault(String message) {
        super(message);
    }
}
