package io.vigie.gateway;

/** Bits of the {@code flags} column ({@code EventFlag} in the wire contract). */
public final class EventFlags {
    /** Throttled: a WSO2 throttling code (900800-900899, {@link Wso2Codes}) or vigie's own refusal. */
    public static final int THROTTLED = 1;
    /** The response came from WSO2's response cache. */
    public static final int CACHE_HIT = 2;
    /** The event comes from the fault sequence. */
    public static final int FAULT = 4;
    /** A vigie directive refused the request (enforce mode). */
    public static final int REFUSED_BY_DIRECTIVE = 8;

    private EventFlags() {}
}
