/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Signatures read from wso2/wso2-synapse, modules/core/src/main/java/org/apache/synapse/
 * AbstractExtendedSynapseHandler.java, tags v4.0.0-wso2v262 and v2.1.7-wso2v227: an abstract
 * class implementing ExtendedSynapseHandler with a name and a property map. (Bodies here are
 * vigie's own minimal ones.)
 */
package org.apache.synapse;

import java.util.HashMap;
import java.util.Map;

public abstract class AbstractExtendedSynapseHandler implements ExtendedSynapseHandler {
    private String handlerName;
    private final Map<String, Object> props = new HashMap<>();

    @Override
    public void addProperty(String name, Object value) {
        props.put(name, value);
    }

    @Override
    @SuppressWarnings("rawtypes")
    public Map getProperties() {
        return props;
    }

    @Override
    public String getName() {
        return handlerName;
    }

    @Override
    public void setName(String name) {
        handlerName = name;
    }
}
