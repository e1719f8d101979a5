package io.vigie.synapse;

/**
 * How the shared code reads and changes one runtime's message context {@code C} (WSO2's Synapse
 * fork, Apache Synapse 3): its Synapse properties, its Axis2 context's properties, and the few
 * actions a refusal needs. One stateless instance per runtime, so a call allocates nothing.
 *
 * <p>The readers never throw for a missing property or a context without an Axis2 part: they
 * return {@code null}. The actions may throw; the shared code decides what a failure means.
 */
public interface MessageAccess<C> {
    /** A property of the Synapse message context, or {@code null}. */
    Object property(C ctx, String name);

    void setProperty(C ctx, String name, Object value);

    /** A property of the Axis2 message context, or {@code null} (also without an Axis2 context). */
    Object axis2Property(C ctx, String name);

    /** True when this message has an Axis2 context, i.e. can be answered in place of the backend. */
    boolean canRespond(C ctx);

    void setAxis2Property(C ctx, String name, Object value);

    void removeAxis2Property(C ctx, String name);

    /** Reads and drops the request's body so that it is neither relayed nor echoed back. */
    void discardRequestBody(C ctx) throws Exception;

    /** Replaces the message's payload with this JSON document. */
    void setJsonPayload(C ctx, String json) throws Exception;

    /** Turns the message into the response ({@code setResponse(true)}, no {@code To}) and sends it back. */
    void sendBack(C ctx) throws Exception;
}
