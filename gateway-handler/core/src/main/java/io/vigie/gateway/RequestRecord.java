package io.vigie.gateway;

/**
 * One request as the gateway saw it: what the adapter reads from the gateway's message context
 * on the response/fault out-flow. Mutable and reusable: an adapter keeps one per thread
 * ({@link VigieAgent#record()}), fills it, and {@link VigieAgent#offer offers} it; the queue
 * copies the fields, so the record can be refilled at once. Nothing here allocates.
 *
 * <p>Units follow {@code proto/vigie/v1/telemetry.proto}: times in microseconds since the Unix
 * epoch, latencies in microseconds, {@code null} or empty strings mean "absent".
 */
public final class RequestRecord {
    /** Number of string fields, in the canonical (proto field) order. */
    public static final int STRING_FIELDS = 11;
    static final int S_APPLICATION_ID = 0;
    static final int S_APPLICATION_NAME = 1;
    static final int S_APPLICATION_OWNER = 2;
    static final int S_API_NAME = 3;
    static final int S_API_VERSION = 4;
    static final int S_API_CONTEXT = 5;
    static final int S_RESOURCE_TEMPLATE = 6;
    static final int S_SUBSCRIPTION_TIER = 7;
    static final int S_TENANT = 8;
    static final int S_API_ID = 9;
    static final int S_CLIENT_IP = 10;

    final String[] strings = new String[STRING_FIELDS];
    long eventTimeUs;
    int httpMethod;
    int httpStatus;
    int errorCode;
    long latencyUs;
    long backendLatencyUs;
    long requestBytes = -1;
    long responseBytes = -1;
    int keyType;
    long uriHash;
    int flags;
    int targetStatus;

    /** Clears every field back to "absent". */
    public RequestRecord reset() {
        java.util.Arrays.fill(strings, null);
        eventTimeUs = 0;
        httpMethod = 0;
        httpStatus = 0;
        errorCode = 0;
        latencyUs = 0;
        backendLatencyUs = 0;
        requestBytes = -1;
        responseBytes = -1;
        keyType = 0;
        uriHash = 0;
        flags = 0;
        targetStatus = 0;
        return this;
    }

    /** Time the gateway received the request, µs since the epoch; 0 = use the offer time. */
    public RequestRecord eventTimeUs(long v) {
        eventTimeUs = v;
        return this;
    }

    /** WSO2 application UUID. */
    public RequestRecord applicationId(String v) {
        strings[S_APPLICATION_ID] = v;
        return this;
    }

    public RequestRecord applicationName(String v) {
        strings[S_APPLICATION_NAME] = v;
        return this;
    }

    /** Application owner (subscriber). */
    public RequestRecord applicationOwner(String v) {
        strings[S_APPLICATION_OWNER] = v;
        return this;
    }

    public RequestRecord apiName(String v) {
        strings[S_API_NAME] = v;
        return this;
    }

    public RequestRecord apiVersion(String v) {
        strings[S_API_VERSION] = v;
        return this;
    }

    public RequestRecord apiContext(String v) {
        strings[S_API_CONTEXT] = v;
        return this;
    }

    /** Resource template that matched, e.g. {@code /menu}. */
    public RequestRecord resourceTemplate(String v) {
        strings[S_RESOURCE_TEMPLATE] = v;
        return this;
    }

    /** Subscription tier (throttling policy name). */
    public RequestRecord subscriptionTier(String v) {
        strings[S_SUBSCRIPTION_TIER] = v;
        return this;
    }

    /** WSO2 tenant domain of the API (analytics {@code apiCreatorTenantDomain}), e.g. {@code carbon.super}. */
    public RequestRecord tenant(String v) {
        strings[S_TENANT] = v;
        return this;
    }

    /** WSO2 API UUID (analytics {@code apiId}). */
    public RequestRecord apiId(String v) {
        strings[S_API_ID] = v;
        return this;
    }

    /**
     * Where the client's address is read from, as the gateway holds it: the
     * {@code X-Forwarded-For} value, or the remote address (no copy is made on the request
     * path). The sender takes the address out of it ({@link ClientIp#addressRange}) and writes it
     * as {@code vigie.capture.client-ip} says: hashed, plain or not at all.
     */
    public RequestRecord clientIp(String v) {
        strings[S_CLIENT_IP] = v;
        return this;
    }

    /** Status the backend answered (analytics {@code targetResponseCode}); 0 = not called / unknown. */
    public RequestRecord targetStatus(int v) {
        targetStatus = v;
        return this;
    }

    /** A {@link HttpMethods} number. */
    public RequestRecord httpMethod(int v) {
        httpMethod = v;
        return this;
    }

    public RequestRecord httpStatus(int v) {
        httpStatus = v;
        return this;
    }

    public RequestRecord errorCode(int v) {
        errorCode = v;
        return this;
    }

    /** Total latency in µs; clamped to the uint32 range on the wire. */
    public RequestRecord latencyUs(long v) {
        latencyUs = v;
        return this;
    }

    public RequestRecord backendLatencyUs(long v) {
        backendLatencyUs = v;
        return this;
    }

    public RequestRecord requestBytes(long v) {
        requestBytes = v;
        return this;
    }

    public RequestRecord responseBytes(long v) {
        responseBytes = v;
        return this;
    }

    /** 0 unknown, 1 production, 2 sandbox. */
    public RequestRecord keyType(int v) {
        keyType = v;
        return this;
    }

    /** Any stable 64-bit hash of the full request URI; 0 = not sent. */
    public RequestRecord uriHash(long v) {
        uriHash = v;
        return this;
    }

    /** Bit set of {@link EventFlags}. */
    public RequestRecord flags(int v) {
        flags = v;
        return this;
    }

    public RequestRecord addFlags(int v) {
        flags |= v;
        return this;
    }

    public String applicationId() {
        return strings[S_APPLICATION_ID];
    }

    public String applicationName() {
        return strings[S_APPLICATION_NAME];
    }

    public String applicationOwner() {
        return strings[S_APPLICATION_OWNER];
    }

    public String apiName() {
        return strings[S_API_NAME];
    }

    public String apiVersion() {
        return strings[S_API_VERSION];
    }

    public String apiContext() {
        return strings[S_API_CONTEXT];
    }

    public String resourceTemplate() {
        return strings[S_RESOURCE_TEMPLATE];
    }

    public String subscriptionTier() {
        return strings[S_SUBSCRIPTION_TIER];
    }

    public String tenant() {
        return strings[S_TENANT];
    }

    public String apiId() {
        return strings[S_API_ID];
    }

    public String clientIp() {
        return strings[S_CLIENT_IP];
    }

    public int targetStatus() {
        return targetStatus;
    }

    public long eventTimeUs() {
        return eventTimeUs;
    }

    public int httpMethod() {
        return httpMethod;
    }

    public int httpStatus() {
        return httpStatus;
    }

    public int errorCode() {
        return errorCode;
    }

    public long latencyUs() {
        return latencyUs;
    }

    public long backendLatencyUs() {
        return backendLatencyUs;
    }

    public long requestBytes() {
        return requestBytes;
    }

    public long responseBytes() {
        return responseBytes;
    }

    public int keyType() {
        return keyType;
    }

    public long uriHash() {
        return uriHash;
    }

    public int flags() {
        return flags;
    }
}
