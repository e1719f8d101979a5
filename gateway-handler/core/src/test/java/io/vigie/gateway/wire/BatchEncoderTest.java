package io.vigie.gateway.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.queue.EventRing;
import io.vigie.wire.v1.EventBatch;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class BatchEncoderTest {
    private static void add(BatchEncoder enc, long t, String app, String api, String ver, int status, long latency) {
        String[] s = new String[EventRing.STRINGS];
        s[0] = app;
        s[3] = api;
        s[4] = ver;
        long[] l = new long[EventRing.LONGS];
        l[EventRing.L_EVENT_TIME_US] = t;
        l[EventRing.L_LATENCY_US] = latency;
        l[EventRing.L_REQUEST_BYTES] = -1;
        l[EventRing.L_RESPONSE_BYTES] = -1;
        int[] i = new int[EventRing.INTS];
        i[EventRing.I_HTTP_STATUS] = status;
        enc.add(s, 0, l, 0, i, 0);
    }

    @Test
    void batchesCarryEveryColumnAndContinueTheDictionary() throws Exception {
        BatchEncoder enc = new BatchEncoder(8);
        add(enc, 10, "app-1", "Orders", "v1", 200, 5);
        add(enc, 11, "app-2", "Orders", "v1", 503, 6);
        EventBatch b1 = enc.build(99);
        assertEquals(1, b1.getSequence());
        assertEquals(1, b1.getDictionaryBase());
        assertEquals(List.of("app-1", "Orders", "v1", "app-2"), b1.getDictionaryAdditionsList());
        for (Column c : Column.values()) {
            assertEquals(2 * c.width, Columns.get(b1, c).size(), c.protoName());
        }
        add(enc, 12, "app-2", "Orders", "v2", 200, 7);
        EventBatch b2 = enc.build(100);
        assertEquals(2, b2.getSequence());
        assertEquals(5, b2.getDictionaryBase());
        assertEquals(List.of("v2"), b2.getDictionaryAdditionsList());

        BatchDecoder dec = new BatchDecoder();
        List<BatchDecoder.Event> e1 = dec.decode(b1);
        assertEquals("app-2", e1.get(1).string(Column.APPLICATION_ID));
        assertEquals(503, e1.get(1).number(Column.HTTP_STATUS));
        assertEquals(-1, e1.get(1).number(Column.RESPONSE_BYTES));
        List<BatchDecoder.Event> e2 = dec.decode(b2);
        assertEquals("v2", e2.get(0).string(Column.API_VERSION));
        assertEquals(7, e2.get(0).number(Column.LATENCY_US));
    }

    @Test
    void outOfRangeValuesAreClampedToTheirColumnWidth() throws Exception {
        BatchEncoder enc = new BatchEncoder(4);
        add(enc, 10, "a", "b", "c", 70_000, 1L << 40);
        add(enc, 11, "a", "b", "c", -5, -3);
        List<BatchDecoder.Event> ev = new BatchDecoder().decode(enc.build(1));
        assertEquals(0xFFFF, ev.get(0).number(Column.HTTP_STATUS));
        assertEquals(0xFFFF_FFFFL, ev.get(0).number(Column.LATENCY_US));
        assertEquals(0, ev.get(1).number(Column.HTTP_STATUS));
        assertEquals(0, ev.get(1).number(Column.LATENCY_US));
    }

    @Test
    void longStringsAreCutOnACharacterBoundaryWithin4096Bytes() {
        String big = "é".repeat(3000); // 6000 bytes
        String cut = BatchEncoder.fitted(big);
        byte[] utf8 = cut.getBytes(StandardCharsets.UTF_8);
        assertTrue(utf8.length <= BatchEncoder.MAX_STRING_BYTES);
        assertEquals(2048, cut.length());
        assertEquals("x".repeat(4096), BatchEncoder.fitted("x".repeat(5000)));
    }

    @Test
    void aFullBatchRefusesMoreEventsAndAnEmptyOneCannotBeBuilt() {
        BatchEncoder enc = new BatchEncoder(1);
        assertThrows(IllegalStateException.class, () -> enc.build(1));
        add(enc, 1, "a", "b", "c", 200, 1);
        assertTrue(enc.isFull());
        assertThrows(IllegalStateException.class, () -> add(enc, 2, "a", "b", "c", 200, 1));
    }

    @Test
    void theDecoderRefusesWhatTheSidecarRefuses() throws Exception {
        BatchEncoder enc = new BatchEncoder(4);
        add(enc, 10, "a", "b", "c", 200, 1);
        EventBatch good = enc.build(1);
        BatchDecoder dec = new BatchDecoder();
        assertThrows(BatchDecoder.RefusedException.class, () -> dec.decode(good.toBuilder().setSequence(2).build()));
        assertThrows(BatchDecoder.RefusedException.class,
                () -> dec.decode(good.toBuilder().setDictionaryBase(3).build()));
        assertThrows(BatchDecoder.RefusedException.class, () -> dec.decode(good.toBuilder().clearApiName().build()));
        assertThrows(BatchDecoder.RefusedException.class,
                () -> dec.decode(good.toBuilder().clearDictionaryAdditions().build()));
        assertEquals(1, dec.decode(good).size());
    }

    @Test
    void theTenantApiIdClientIpAndBackendStatusColumnsRoundTrip() throws Exception {
        io.vigie.gateway.ClientIp salted = io.vigie.gateway.ClientIp.hashed("pepper");
        BatchEncoder enc = new BatchEncoder(8, salted);
        String[] s = new String[EventRing.STRINGS];
        s[3] = "Orders";
        s[4] = "v1";
        s[8] = "acme.com";
        s[10] = "203.0.113.7, 10.0.0.1";
        s[9] = "6f1d0b2c-5a4e-4c1b-9d7e-0a1b2c3d4e5f";
        long[] l = new long[EventRing.LONGS];
        l[EventRing.L_EVENT_TIME_US] = 10;
        int[] i = new int[EventRing.INTS];
        i[EventRing.I_HTTP_STATUS] = 502;
        i[EventRing.I_TARGET_STATUS] = 500;
        enc.add(s, 0, l, 0, i, 0);
        s[10] = "203.0.113.7"; // the same address: the same hash, one dictionary entry
        i[EventRing.I_TARGET_STATUS] = 70_000; // absurd: clamped to the uint16 column
        enc.add(s, 0, l, 0, i, 0);
        s[10] = null;
        i[EventRing.I_TARGET_STATUS] = -5;
        enc.add(s, 0, l, 0, i, 0);
        EventBatch b = enc.build(99);
        String hash = BatchEncoder.hashed(salted.hash("203.0.113.7", 0, 11));
        assertEquals(List.of("Orders", "v1", "acme.com", "6f1d0b2c-5a4e-4c1b-9d7e-0a1b2c3d4e5f", hash),
                b.getDictionaryAdditionsList(), "interned in proto field order");
        List<BatchDecoder.Event> e = new BatchDecoder().decode(b);
        assertEquals("acme.com", e.get(0).string(Column.TENANT));
        assertEquals("6f1d0b2c-5a4e-4c1b-9d7e-0a1b2c3d4e5f", e.get(0).string(Column.API_ID));
        assertEquals(hash, e.get(0).string(Column.CLIENT_IP));
        assertEquals(500, e.get(0).number(Column.TARGET_STATUS));
        assertEquals(502, e.get(0).number(Column.HTTP_STATUS));
        assertEquals(hash, e.get(1).string(Column.CLIENT_IP));
        assertEquals(0xFFFF, e.get(1).number(Column.TARGET_STATUS));
        assertEquals("", e.get(2).string(Column.CLIENT_IP), "no address: id 0");
        assertEquals(0, e.get(2).number(Column.TARGET_STATUS));
        assertEquals(29, Column.TENANT.field);
        assertEquals(32, Column.TARGET_STATUS.field);
        assertEquals("h:ffffffffffffffff", BatchEncoder.hashed(-1L));
    }

    @Test
    void manyClientHashesEachGetOneDictionaryEntry() throws Exception {
        io.vigie.gateway.ClientIp ip = io.vigie.gateway.ClientIp.hashed("s");
        BatchEncoder enc = new BatchEncoder(4096, ip);
        BatchDecoder dec = new BatchDecoder();
        for (int round = 0; round < 3; round++) {
            for (int k = 1; k <= 3000; k++) {
                String[] s = new String[EventRing.STRINGS];
                s[3] = "Orders";
                s[4] = "v1";
                long[] l = new long[EventRing.LONGS];
                l[EventRing.L_EVENT_TIME_US] = 10;
                s[10] = "10." + (k / 256) + "." + (k % 256) + ".1";
                enc.add(s, 0, l, 0, new int[EventRing.INTS], 0);
            }
            List<BatchDecoder.Event> e = dec.decode(enc.build(99));
            for (int k = 1; k <= 3000; k++) {
                String a = "10." + (k / 256) + "." + (k % 256) + ".1";
                assertEquals(BatchEncoder.hashed(ip.hash(a, 0, a.length())), e.get(k - 1).string(Column.CLIENT_IP));
            }
        }
        assertEquals(1 + 2 + 3000, enc.dictionarySize(), "each hash once, across batches of the stream");
    }
}
