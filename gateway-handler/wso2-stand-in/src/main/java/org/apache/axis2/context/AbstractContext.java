/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Axis2's org.apache.axis2.context.AbstractContext (modules/kernel/src/org/apache/axis2/context/
 * AbstractContext.java, Apache Axis2 1.6 and WSO2's 1.6.1-wso2v fork): "public Object
 * getProperty(String key)", "public void setProperty(String key, Object value)",
 * "public synchronized void removeProperty(String key)".
 */
package org.apache.axis2.context;

public abstract class AbstractContext {
    public Object getProperty(String key) {
        throw new UnsupportedOperationException("stand-in");
    }

    public void setProperty(String key, Object value) {
        throw new UnsupportedOperationException("stand-in");
    }

    public synchronized void removeProperty(String key) {
        throw new UnsupportedOperationException("stand-in");
    }
}
