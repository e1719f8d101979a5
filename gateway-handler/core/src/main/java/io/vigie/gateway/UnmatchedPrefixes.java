package io.vigie.gateway;

import io.vigie.wire.v1.UnmatchedPrefix;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.LongAdder;

/**
 * Requests that matched no API, counted by path prefix: the first segment of the request path
 * ({@code /wp-admin/setup.php} counts under {@code /wp-admin}; {@code /} alone, or no path, under
 * {@code /}). At most {@link #MAX_PREFIXES} prefixes are kept, the first ones met; every other
 * request counts under {@link #OTHER}. A prefix is cut to {@link #MAX_PREFIX_CHARS} characters.
 * Sent in {@code GatewayReport.unmatched_prefixes}, cumulative since the handler started.
 *
 * <p>Called on the request path: never blocks, never throws, and allocates only the first time
 * a prefix is met (at most {@link #MAX_PREFIXES} times in the process's life). An open-addressing
 * table of {@code 2 x MAX_PREFIXES} slots, each claimed once by CAS.
 */
public final class UnmatchedPrefixes {
    public static final int MAX_PREFIXES = 64;
    public static final int MAX_PREFIX_CHARS = 64;
    /** Where every request beyond the first {@link #MAX_PREFIXES} prefixes counts. */
    public static final String OTHER = "*";

    private static final int SLOTS = MAX_PREFIXES * 2;
    private final AtomicReferenceArray<String> prefixes = new AtomicReferenceArray<>(SLOTS);
    private final AtomicLongArray counts = new AtomicLongArray(SLOTS);
    private final AtomicInteger claimed = new AtomicInteger();
    private final LongAdder other = new LongAdder();

    /** Counts one request for the prefix of {@code path} (a path, or a URL with scheme and host). */
    public void count(String path) {
        int from = 0;
        int to = 0;
        if (path != null) {
            int n = path.length();
            int start = 0;
            int scheme = path.indexOf("://");
            if (scheme > 0 && scheme < 16) { // an absolute URL: skip scheme and authority
                int slash = path.indexOf('/', scheme + 3);
                start = slash < 0 ? n : slash;
            }
            while (start < n && path.charAt(start) == '/') {
                start++;
            }
            int end = start;
            while (end < n && end - start < MAX_PREFIX_CHARS) {
                char c = path.charAt(end);
                if (c == '/' || c == '?' || c == '#' || c == ';') {
                    break;
                }
                end++;
            }
            from = start;
            to = end;
        }
        int h = hash(path, from, to);
        for (int probe = 0; probe < SLOTS; probe++) {
            int slot = (h + probe) & (SLOTS - 1);
            String p = prefixes.get(slot);
            if (p == null) {
                if (claimed.incrementAndGet() > MAX_PREFIXES) {
                    claimed.decrementAndGet();
                    other.increment();
                    return;
                }
                String fresh = from == to ? "/" : "/" + path.substring(from, to);
                if (prefixes.compareAndSet(slot, null, fresh)) {
                    counts.incrementAndGet(slot);
                    return;
                }
                claimed.decrementAndGet(); // another thread took this slot first: look at it
                p = prefixes.get(slot);
            }
            if (matches(p, path, from, to)) {
                counts.incrementAndGet(slot);
                return;
            }
        }
        other.increment();
    }

    /** The counts so far, prefix by prefix ({@link #OTHER} last, when any). */
    public List<UnmatchedPrefix> report() {
        List<UnmatchedPrefix> out = new ArrayList<>();
        for (int k = 0; k < SLOTS; k++) {
            String p = prefixes.get(k);
            long n = counts.get(k);
            if (p != null && n > 0) {
                out.add(UnmatchedPrefix.newBuilder().setPrefix(p).setRequests(n).build());
            }
        }
        long rest = other.sum();
        if (rest > 0) {
            out.add(UnmatchedPrefix.newBuilder().setPrefix(OTHER).setRequests(rest).build());
        }
        return out;
    }

    /** {@code prefix} is "/" + path[from, to). */
    private static boolean matches(String prefix, String path, int from, int to) {
        int len = to - from;
        if (prefix.length() != len + 1) {
            return false;
        }
        return len == 0 || prefix.regionMatches(1, path, from, len);
    }

    private static int hash(String s, int from, int to) {
        int h = 0x811c9dc5;
        for (int i = from; i < to; i++) {
            h ^= s.charAt(i);
            h *= 0x01000193;
        }
        return h ^ (h >>> 16);
    }
}
