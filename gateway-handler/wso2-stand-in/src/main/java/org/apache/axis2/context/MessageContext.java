/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Axis2's org.apache.axis2.context.MessageContext (modules/kernel/src/org/apache/axis2/context/
 * MessageContext.java): "public class MessageContext extends AbstractContext", overriding
 * "public Object getProperty(String name)"; TRANSPORT_HEADERS = "TRANSPORT_HEADERS".
 */
package org.apache.axis2.context;

public class MessageContext extends AbstractContext {
    public static final String TRANSPORT_HEADERS = "TRANSPORT_HEADERS";

    @Override
    public Object getProperty(String name) {
        throw new UnsupportedOperationException("stand-in");
    }
}
