/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Axiom's org.apache.axiom.om.OMElement (an interface; WSO2 ships axiom 1.2.11-wso2vNN). Only the
 * return type of JsonUtil.getNewJsonPayload; no member is used.
 */
package org.apache.axiom.om;

public interface OMElement {}
