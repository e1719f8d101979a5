package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vigie.wire.v1.UnmatchedPrefix;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

class UnmatchedPrefixesTest {
    private static Map<String, Long> counts(UnmatchedPrefixes u) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (UnmatchedPrefix p : u.report()) {
            out.put(p.getPrefix(), p.getRequests());
        }
        return out;
    }

    @Test
    void requestsCountUnderTheFirstSegmentOfTheirPath() {
        UnmatchedPrefixes u = new UnmatchedPrefixes();
        u.count("/wp-admin/setup.php");
        u.count("/wp-admin");
        u.count("/wp-admin?x=1");
        u.count("http://gw.example.com:8280/wp-admin/x");
        u.count("//wp-admin/");
        u.count("/");
        u.count("");
        u.count(null);
        u.count("http://gw.example.com");
        u.count("/.env");
        u.count("/ordres/1.0.0/menu");
        assertEquals(Map.of("/wp-admin", 5L, "/", 4L, "/.env", 1L, "/ordres", 1L), counts(u));
    }

    @Test
    void atMost64PrefixesTheRestUnderAStarAndEachBounded() {
        UnmatchedPrefixes u = new UnmatchedPrefixes();
        for (int k = 0; k < 1_000; k++) {
            u.count("/probe-" + k + "/x");
        }
        u.count("/probe-3/again");
        u.count("/" + "a".repeat(10_000));
        Map<String, Long> c = counts(u);
        assertEquals(UnmatchedPrefixes.MAX_PREFIXES + 1, c.size());
        assertEquals(2L, c.get("/probe-3"));
        assertEquals(1_000 - UnmatchedPrefixes.MAX_PREFIXES + 1, c.get(UnmatchedPrefixes.OTHER));
        long total = c.values().stream().mapToLong(Long::longValue).sum();
        assertEquals(1_002, total, "every request counted once");
        UnmatchedPrefixes v = new UnmatchedPrefixes();
        v.count("/" + "a".repeat(10_000));
        v.count("/" + "a".repeat(UnmatchedPrefixes.MAX_PREFIX_CHARS) + "b");
        assertEquals(Map.of("/" + "a".repeat(UnmatchedPrefixes.MAX_PREFIX_CHARS), 2L), counts(v));
    }

    @Test
    void concurrentCountsAreExact() throws Exception {
        UnmatchedPrefixes u = new UnmatchedPrefixes();
        int threads = 8;
        int each = 20_000;
        CountDownLatch go = new CountDownLatch(1);
        Thread[] ts = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            ts[t] = new Thread(() -> {
                try {
                    go.await();
                } catch (InterruptedException e) {
                    return;
                }
                for (int k = 0; k < each; k++) {
                    u.count("/p" + (k % 100) + "/x");
                }
            });
            ts[t].start();
        }
        go.countDown();
        for (Thread t : ts) {
            t.join();
        }
        Map<String, Long> c = counts(u);
        assertEquals(UnmatchedPrefixes.MAX_PREFIXES + 1, c.size());
        assertEquals((long) threads * each, c.values().stream().mapToLong(Long::longValue).sum());
        for (Map.Entry<String, Long> e : c.entrySet()) {
            if (!e.getKey().equals(UnmatchedPrefixes.OTHER)) {
                // while the table fills, a racing request may go to "*" first: never more than its own
                org.junit.jupiter.api.Assertions.assertTrue(e.getValue() <= (long) threads * each / 100, e.getKey());
            }
        }
    }
}
