package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.vigie.gateway.testing.MiniJson;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class Wso2CodesTest {
    @Test
    void throttledComesFromTheThrottlingCodesOrTheFlagOnly() {
        assertTrue(Wso2Codes.throttled(900800, 0));
        assertTrue(Wso2Codes.throttled(900899, 0));
        assertFalse(Wso2Codes.throttled(900799, 0));
        assertFalse(Wso2Codes.throttled(900900, 0), "an authentication failure is not throttling");
        assertFalse(Wso2Codes.throttled(0, 0), "a backend's own 429 has no code: not throttling");
        assertTrue(Wso2Codes.throttled(0, EventFlags.THROTTLED));
        assertEquals("backend", Wso2Codes.family(303001));
        assertEquals("transport", Wso2Codes.family(101000));
        assertEquals("other", Wso2Codes.family(404));
    }

    /** The sidecar's taxonomy vector, {@code tests/vectors/taxonomy/codes.json} (skipped while it is absent). */
    @Test
    @SuppressWarnings("unchecked")
    void theRangesAreTheSidecarsTaxonomy() throws Exception {
        String p = System.getProperty("vigie.vectors");
        Path f = (p == null || p.isEmpty() ? Paths.get("../../tests/vectors") : Paths.get(p)).resolve("taxonomy").resolve("codes.json");
        assumeTrue(Files.isRegularFile(f), "no " + f + " (the sidecar's code taxonomy vector)");
        Map<String, Object> doc = (Map<String, Object>) MiniJson.parse(Files.readString(f, StandardCharsets.UTF_8));
        assertEquals(EventFlags.THROTTLED, ((Number) doc.get("flag_throttled")).intValue());
        Map<String, Object> families = (Map<String, Object>) doc.get("families");
        assertEquals(List.of(List.of(900800L, 900899L)), longs(families.get("throttling")));
        assertEquals(List.of(List.of(900900L, 900999L)), longs(families.get("authentication")));
        assertEquals(List.of(List.of(101500L, 101599L), List.of(303001L, 303001L)), longs(families.get("backend")));
        assertEquals(List.of(List.of(101000L, 101499L)), longs(families.get("transport")));
        List<String> columns = (List<String>) doc.get("case_columns");
        int code = columns.indexOf("error_code");
        int flags = columns.indexOf("flags");
        int family = columns.indexOf("family");
        int throttled = columns.indexOf("throttled");
        List<List<Object>> cases = (List<List<Object>>) doc.get("cases");
        assertFalse(cases.isEmpty());
        for (List<Object> c : cases) {
            int ec = ((Number) c.get(code)).intValue();
            int fl = ((Number) c.get(flags)).intValue();
            assertEquals(c.get(family), Wso2Codes.family(ec), "family of " + c);
            assertEquals(c.get(throttled), Wso2Codes.throttled(ec, fl), "throttled of " + c);
        }
    }

    @SuppressWarnings("unchecked")
    private static List<List<Long>> longs(Object ranges) {
        List<List<Long>> out = new ArrayList<>();
        for (List<Object> r : (List<List<Object>>) ranges) {
            out.add(List.of(((Number) r.get(0)).longValue(), ((Number) r.get(1)).longValue()));
        }
        return out;
    }
}
