package io.vigie.gateway.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.queue.EventRing;
import io.vigie.gateway.testing.MiniJson;
import io.vigie.wire.v1.GatewayMessage;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The shared Java/Python test vectors ({@code tests/vectors/*.json}, written by the sidecar's
 * {@code StreamEncoder}): the Java encoder must produce the very same bytes from the records, and
 * the Java decoder must read the records back from those bytes.
 */
class VectorsTest {
    private static final Column[] STRING_ORDER = {
        Column.APPLICATION_ID, Column.APPLICATION_NAME, Column.APPLICATION_OWNER, Column.API_NAME,
        Column.API_VERSION, Column.API_CONTEXT, Column.RESOURCE_TEMPLATE, Column.SUBSCRIPTION_TIER,
    };

    static Path vectorsDir() {
        String p = System.getProperty("vigie.vectors");
        Path dir = p == null || p.isEmpty() ? Paths.get("../../tests/vectors") : Paths.get(p);
        return dir.toAbsolutePath().normalize();
    }

    @TestFactory
    Stream<DynamicTest> everyVector() throws IOException {
        Path dir = vectorsDir();
        List<Path> files = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            s.filter(f -> f.toString().endsWith(".json")).sorted().forEach(files::add);
        }
        assertFalse(files.isEmpty(), "no vectors in " + dir);
        return files.stream().flatMap(f -> Stream.of(
                DynamicTest.dynamicTest(f.getFileName() + ": Java encodes the same bytes", () -> encodes(f)),
                DynamicTest.dynamicTest(f.getFileName() + ": Java decodes the records", () -> decodes(f))));
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> batches(Path f) throws IOException {
        Map<String, Object> doc = (Map<String, Object>) MiniJson.parse(Files.readString(f, StandardCharsets.UTF_8));
        return (List<Map<String, Object>>) doc.get("batches");
    }

    @SuppressWarnings("unchecked")
    private static void encodes(Path f) throws IOException {
        BatchEncoder enc = new BatchEncoder(1024);
        for (Map<String, Object> batch : batches(f)) {
            List<Map<String, Object>> events = (List<Map<String, Object>>) batch.get("events");
            long presence = 0;
            for (Map<String, Object> rec : events) {
                for (String k : rec.keySet()) {
                    Column c = Column.byProtoName(k);
                    assertTrue(c != null, "unknown column " + k);
                    presence |= c.bit();
                }
                addRecord(enc, rec);
            }
            long sentAt = ((BigInteger) batch.get("sent_at_us")).longValueExact();
            GatewayMessage m = GatewayMessage.newBuilder().setBatch(enc.build(sentAt, presence)).build();
            assertEquals(batch.get("gateway_message_hex"), HexFormat.of().formatHex(m.toByteArray()),
                    f.getFileName() + " batch " + m.getBatch().getSequence());
        }
    }

    @SuppressWarnings("unchecked")
    private static void decodes(Path f) throws Exception {
        BatchDecoder dec = new BatchDecoder();
        for (Map<String, Object> batch : batches(f)) {
            List<Map<String, Object>> records = (List<Map<String, Object>>) batch.get("events");
            GatewayMessage m = GatewayMessage.parseFrom(HexFormat.of().parseHex((String) batch.get("gateway_message_hex")));
            assertEquals(((BigInteger) batch.get("sent_at_us")).longValueExact(), m.getBatch().getSentAtUs());
            List<BatchDecoder.Event> events = dec.decode(m.getBatch());
            assertEquals(records.size(), events.size());
            for (int k = 0; k < records.size(); k++) {
                Map<String, Object> rec = records.get(k);
                BatchDecoder.Event e = events.get(k);
                for (Column c : Column.values()) {
                    Object want = rec.get(c.protoName());
                    if (c.dictionary) {
                        assertEquals(want == null ? "" : want, e.string(c), c.protoName());
                    } else {
                        long w = want == null ? c.defaultValue : ((BigInteger) want).longValue(); // uint64: bits
                        assertEquals(w, e.number(c), c.protoName());
                    }
                }
            }
        }
    }

    /** Puts one record through the same slot layout the ring uses. */
    static void addRecord(BatchEncoder enc, Map<String, Object> rec) {
        String[] s = new String[EventRing.STRINGS];
        for (int k = 0; k < STRING_ORDER.length; k++) {
            Object v = rec.get(STRING_ORDER[k].protoName());
            s[k] = v == null ? null : (String) v;
        }
        long[] l = new long[EventRing.LONGS];
        l[EventRing.L_EVENT_TIME_US] = num(rec, Column.EVENT_TIME_US);
        l[EventRing.L_LATENCY_US] = num(rec, Column.LATENCY_US);
        l[EventRing.L_BACKEND_LATENCY_US] = num(rec, Column.BACKEND_LATENCY_US);
        l[EventRing.L_REQUEST_BYTES] = num(rec, Column.REQUEST_BYTES);
        l[EventRing.L_RESPONSE_BYTES] = num(rec, Column.RESPONSE_BYTES);
        l[EventRing.L_URI_HASH] = num(rec, Column.URI_HASH);
        int[] i = new int[EventRing.INTS];
        i[EventRing.I_HTTP_METHOD] = (int) num(rec, Column.HTTP_METHOD);
        i[EventRing.I_HTTP_STATUS] = (int) num(rec, Column.HTTP_STATUS);
        i[EventRing.I_ERROR_CODE] = (int) num(rec, Column.ERROR_CODE);
        i[EventRing.I_KEY_TYPE] = (int) num(rec, Column.KEY_TYPE);
        i[EventRing.I_FLAGS] = (int) num(rec, Column.FLAGS);
        enc.add(s, 0, l, 0, i, 0);
    }

    private static long num(Map<String, Object> rec, Column c) {
        Object v = rec.get(c.protoName());
        return v == null ? c.defaultValue : ((BigInteger) v).longValue();
    }
}
