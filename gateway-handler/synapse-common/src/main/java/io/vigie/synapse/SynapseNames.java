package io.vigie.synapse;

/**
 * Message context property names, as WSO2 APIM 4.x and Synapse set them (carbon-apimgt
 * {@code APIMgtGatewayConstants} / {@code APIConstants}, analytics {@code Constants}; Synapse
 * {@code SynapseConstants}, {@code RESTConstants}), and vigie's own. One home for them.
 */
public final class SynapseNames {
    private SynapseNames() {}

    // on the Synapse message context, set by WSO2 APIM
    public static final String API_NAME = "api.ut.api";
    public static final String API_VERSION = "api.ut.version";
    public static final String API_CONTEXT = "api.ut.context";
    public static final String HTTP_METHOD = "api.ut.HTTP_METHOD";
    public static final String ELECTED_RESOURCE = "API_ELECTED_RESOURCE";
    public static final String AUTH_CONTEXT = "__API_AUTH_CONTEXT";
    public static final String APPLICATION_NAME = "api.ut.application.name";
    public static final String KEY_TYPE = "AM_KEY_TYPE";
    /** The API's UUID, set on every request of the API by its first handler (APIMgtLatencyStatsHandler). */
    public static final String API_UUID = "API_UUID";
    /** The API's provider, {@code name@tenant.domain} outside the super tenant. */
    public static final String API_PUBLISHER = "api.ut.apiPublisher";
    /** The client's address as WSO2's analytics handler read it on the request in-flow. */
    public static final String USER_IP = "api.analytics.user.ip";
    /** The backend's status as WSO2's analytics handler read it on the response in-flow. */
    public static final String ANALYTICS_BACKEND_STATUS = "api.analytics.backend.response_code";
    /** Read by nothing: WSO2 sets it where it throttles nothing too ("throttled" comes from the code). */
    public static final String THROTTLED_OUT_REASON = "THROTTLED_OUT_REASON";
    public static final String CACHE_HIT = "api.analytics.cacheHit";
    public static final String ANALYTICS_REQUEST_START = "apim.analytics.request.start.time";
    public static final String ANALYTICS_BACKEND_START = "apim.analytics.backend.start.time";
    public static final String ANALYTICS_BACKEND_END = "apim.analytics.backend.end.time";
    // on the Synapse message context, set by Synapse's REST dispatch
    public static final String REST_API_NAME = "SYNAPSE_REST_API";
    public static final String REST_API_CONTEXT = "REST_API_CONTEXT";
    public static final String REST_API_VERSION = "SYNAPSE_REST_API_VERSION";
    public static final String REST_METHOD = "REST_METHOD";
    public static final String FULL_REQUEST_PATH = "REST_FULL_REQUEST_PATH";
    // the fault properties (SynapseConstants), read by WSO2's fault sequences and analytics
    public static final String ERROR_CODE = "ERROR_CODE";
    public static final String ERROR_MESSAGE = "ERROR_MESSAGE";
    public static final String ERROR_DETAIL = "ERROR_DETAIL";
    public static final String RESPONSE = "RESPONSE";
    // on the Axis2 message context
    public static final String HTTP_SC = "HTTP_SC";
    public static final String AXIS2_HTTP_METHOD = "HTTP_METHOD";
    public static final String TRANSPORT_HEADERS = "TRANSPORT_HEADERS";
    public static final String MESSAGE_BUILDER_INVOKED = "message.builder.invoked";
    public static final String MESSAGE_TYPE = "messageType";
    public static final String CONTENT_TYPE = "ContentType";
    public static final String NO_ENTITY_BODY = "NO_ENTITY_BODY";
    /** The connection's remote address (Axis2 {@code MessageContext.REMOTE_ADDR}). */
    public static final String REMOTE_ADDR = "REMOTE_ADDR";
    /** The request URL as received (Axis2 {@code Constants.Configuration.TRANSPORT_IN_URL}). */
    public static final String TRANSPORT_IN_URL = "TransportInURL";
    // a request transport header
    public static final String X_FORWARDED_FOR = "X-Forwarded-For";
    // vigie's own
    public static final String START_US = "vigie.request.start.us";
    public static final String BACKEND_START_US = "vigie.backend.start.us";
    public static final String BACKEND_END_US = "vigie.backend.end.us";
    /** The backend's status ({@code HTTP_SC} on the response in-flow), as the runtime put it. */
    public static final String BACKEND_STATUS = "vigie.backend.status";
    /** Where the client's address is (the request's X-Forwarded-For or remote address), kept on the request in-flow. */
    public static final String CLIENT_IP = "vigie.client.ip";
    public static final String CHECKED = "vigie.checked";
    public static final String REFUSED = "vigie.refused";
    /** Size in bytes of the answer vigie's refusal sent (0 when it went without a body). */
    public static final String REFUSAL_BYTES = "vigie.refusal.bytes";
}
