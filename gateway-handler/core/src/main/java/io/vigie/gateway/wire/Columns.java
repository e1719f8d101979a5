package io.vigie.gateway.wire;

import com.google.protobuf.ByteString;
import io.vigie.wire.v1.EventBatch;

/** Column accessors of the generated {@link EventBatch}, by {@link Column}. */
final class Columns {
    private Columns() {}

    static void set(EventBatch.Builder b, Column c, ByteString v) {
        switch (c) {
            case EVENT_TIME_US: b.setEventTimeUs(v); break;
            case APPLICATION_ID: b.setApplicationId(v); break;
            case APPLICATION_NAME: b.setApplicationName(v); break;
            case APPLICATION_OWNER: b.setApplicationOwner(v); break;
            case API_NAME: b.setApiName(v); break;
            case API_VERSION: b.setApiVersion(v); break;
            case API_CONTEXT: b.setApiContext(v); break;
            case RESOURCE_TEMPLATE: b.setResourceTemplate(v); break;
            case HTTP_METHOD: b.setHttpMethod(v); break;
            case HTTP_STATUS: b.setHttpStatus(v); break;
            case ERROR_CODE: b.setErrorCode(v); break;
            case LATENCY_US: b.setLatencyUs(v); break;
            case BACKEND_LATENCY_US: b.setBackendLatencyUs(v); break;
            case REQUEST_BYTES: b.setRequestBytes(v); break;
            case RESPONSE_BYTES: b.setResponseBytes(v); break;
            case KEY_TYPE: b.setKeyType(v); break;
            case SUBSCRIPTION_TIER: b.setSubscriptionTier(v); break;
            case URI_HASH: b.setUriHash(v); break;
            case FLAGS: b.setFlags(v); break;
            case TENANT: b.setTenant(v); break;
            case API_ID: b.setApiId(v); break;
            case CLIENT_IP: b.setClientIp(v); break;
            case TARGET_STATUS: b.setTargetStatus(v); break;
            default: throw new AssertionError(c);
        }
    }

    static ByteString get(EventBatch b, Column c) {
        switch (c) {
            case EVENT_TIME_US: return b.getEventTimeUs();
            case APPLICATION_ID: return b.getApplicationId();
            case APPLICATION_NAME: return b.getApplicationName();
            case APPLICATION_OWNER: return b.getApplicationOwner();
            case API_NAME: return b.getApiName();
            case API_VERSION: return b.getApiVersion();
            case API_CONTEXT: return b.getApiContext();
            case RESOURCE_TEMPLATE: return b.getResourceTemplate();
            case HTTP_METHOD: return b.getHttpMethod();
            case HTTP_STATUS: return b.getHttpStatus();
            case ERROR_CODE: return b.getErrorCode();
            case LATENCY_US: return b.getLatencyUs();
            case BACKEND_LATENCY_US: return b.getBackendLatencyUs();
            case REQUEST_BYTES: return b.getRequestBytes();
            case RESPONSE_BYTES: return b.getResponseBytes();
            case KEY_TYPE: return b.getKeyType();
            case SUBSCRIPTION_TIER: return b.getSubscriptionTier();
            case URI_HASH: return b.getUriHash();
            case FLAGS: return b.getFlags();
            case TENANT: return b.getTenant();
            case API_ID: return b.getApiId();
            case CLIENT_IP: return b.getClientIp();
            case TARGET_STATUS: return b.getTargetStatus();
            default: throw new AssertionError(c);
        }
    }
}
