package io.vigie.synapse;

import java.util.concurrent.ConcurrentHashMap;

/**
 * The API name and version inside WSO2's {@code SYNAPSE_REST_API} value,
 * {@code provider--Name:vX} (e.g. {@code admin--PizzaShackAPI:v1.0.0}; a tenant's provider is
 * {@code user-AT-tenant.com}). Apache Synapse's own APIs have a bare name, returned as is.
 *
 * <p>Read on the request path of requests WSO2 did not authenticate, so the parts of each
 * distinct value are cut once and kept (at most {@link #MAX_CACHED} values; past that they are
 * cut at each call): a lookup allocates nothing.
 */
final class SynapseRestApiName {
    /** Distinct {@code SYNAPSE_REST_API} values kept; a gateway deploys far fewer APIs. */
    static final int MAX_CACHED = 4_096;

    private static final ConcurrentHashMap<String, String[]> PARTS = new ConcurrentHashMap<>();

    private SynapseRestApiName() {}

    /** The API's name: between {@code --} and {@code :v}, or the value without them. */
    static String name(String restApi) {
        return parts(restApi)[0];
    }

    /** The API's version after {@code :v}, or {@code null} when the value has none. */
    static String version(String restApi) {
        return parts(restApi)[1];
    }

    private static String[] parts(String restApi) {
        String[] p = PARTS.get(restApi);
        if (p == null) {
            p = split(restApi);
            if (PARTS.size() < MAX_CACHED) {
                PARTS.putIfAbsent(restApi, p);
            }
        }
        return p;
    }

    static String[] split(String v) {
        int dashes = v.indexOf("--");
        int start = dashes >= 0 ? dashes + 2 : 0;
        int colon = v.lastIndexOf(":v");
        int end = colon >= start ? colon : v.length();
        String name = v.substring(start, end);
        String version = colon >= start && colon + 2 < v.length() ? v.substring(colon + 2) : null;
        return new String[] {name.isEmpty() ? v : name, version};
    }
}
