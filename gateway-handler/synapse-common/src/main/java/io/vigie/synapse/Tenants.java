package io.vigie.synapse;

import java.util.concurrent.ConcurrentHashMap;

/**
 * The WSO2 tenant domain of an API, as WSO2's analytics finds it ({@code apiCreatorTenantDomain}):
 * an API of a tenant other than the super tenant has a context starting {@code /t/<domain>/}
 * (carbon's {@code MultitenantUtils.getTenantDomainFromRequestURL}, which the analytics handler
 * uses to find the API), any other context is the super tenant's ({@code carbon.super}). Without
 * a context, the domain after the last '@' of the API's provider ({@code MultitenantUtils.getTenantDomain});
 * without either, {@code null} (the stream's {@code Hello.tenant} applies).
 *
 * <p>On the request path: the answer per context is cached (a few thousand APIs at most; past
 * {@link #MAX_CACHED} contexts it is computed each time), so a known context costs one map
 * lookup and no allocation. Never throws.
 */
public final class Tenants {
    public static final String SUPER_TENANT = "carbon.super";
    /** A tenant domain longer than this is cut (a DNS name has at most 253 characters). */
    public static final int MAX_CHARS = 253;
    static final int MAX_CACHED = 4096;

    private final ConcurrentHashMap<String, String> byContext = new ConcurrentHashMap<>();

    /** The tenant domain of the API with this context and provider (either may be null). */
    public String of(String context, String provider) {
        if (context != null) {
            String t = byContext.get(context);
            if (t == null) {
                t = fromContext(context);
                if (byContext.size() < MAX_CACHED) {
                    byContext.put(context, t);
                }
            }
            return t;
        }
        if (provider != null) {
            int at = provider.lastIndexOf('@');
            if (at >= 0 && at < provider.length() - 1) {
                return cut(provider.substring(at + 1));
            }
            return SUPER_TENANT;
        }
        return null;
    }

    /** The domain after {@code /t/} in {@code context}, else the super tenant. */
    static String fromContext(String context) {
        int t = context.indexOf("/t/");
        if (t < 0) {
            return SUPER_TENANT;
        }
        int from = t + 3;
        int end = context.indexOf('/', from);
        String d = end < 0 ? context.substring(from) : context.substring(from, end);
        return d.isEmpty() ? SUPER_TENANT : cut(d);
    }

    private static String cut(String d) {
        return d.length() > MAX_CHARS ? d.substring(0, MAX_CHARS) : d;
    }
}
