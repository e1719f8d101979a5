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
}
