package io.vigie.gateway.wire;

import com.google.protobuf.ByteString;
import io.vigie.gateway.ClientIp;
import io.vigie.gateway.queue.EventRing;
import io.vigie.wire.v1.EventBatch;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The gateway's side of one stream: a dictionary of the strings sent so far and the columns of
 * the batch being built. One instance per stream; a new stream starts a new encoder (and so a
 * new dictionary). Used by the sender thread only (not thread-safe).
 *
 * <p>Canonical order, shared with {@code StreamEncoder} in the sidecar through
 * {@code tests/vectors}: strings are added to the dictionary in the order they are first met,
 * events in order and, within an event, the dictionary columns in proto field order.
 */
public final class BatchEncoder {
    /** Longest dictionary string, in UTF-8 bytes; longer strings are cut (on a character boundary). */
    public static final int MAX_STRING_BYTES = 4096;

    private static final Column[] STRING_COLUMNS = {
        Column.APPLICATION_ID, Column.APPLICATION_NAME, Column.APPLICATION_OWNER, Column.API_NAME,
        Column.API_VERSION, Column.API_CONTEXT, Column.RESOURCE_TEMPLATE, Column.SUBSCRIPTION_TIER,
        Column.TENANT, Column.API_ID, Column.CLIENT_IP,
    };
    private static final int CLIENT_IP_STRING = STRING_COLUMNS.length - 1;
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private final int maxEvents;
    private final ClientIp clientIp;
    private final byte[][] columns = new byte[Column.values().length][];
    private final Map<String, Integer> ids = new HashMap<>();
    private final List<String> pending = new ArrayList<>();
    /** Client-address hashes already interned on this stream: hash -> dictionary id (open addressing, 0 = empty). */
    private long[] hashKeys = new long[256];
    private int[] hashIds = new int[256];
    private int hashCount;
    private int dictionarySize = 1; // id 0 is the empty string
    private int base = 1;
    private long sequence;
    /** Number of the current batch's first event ({@code EventBatch.first_event}; 0 = not numbered). */
    private long firstEvent;
    private int count;

    /** An encoder whose batches hold at most {@code maxEvents} events, client addresses kept as they are. */
    public BatchEncoder(int maxEvents) {
        this(maxEvents, ClientIp.plain());
    }

    /**
     * An encoder whose batches hold at most {@code maxEvents} events, writing the client's address
     * as {@code clientIp} says (hashed, plain or not at all).
     */
    public BatchEncoder(int maxEvents, ClientIp clientIp) {
        if (maxEvents < 1) {
            throw new IllegalArgumentException("maxEvents must be positive");
        }
        this.maxEvents = maxEvents;
        this.clientIp = clientIp;
        for (Column c : Column.values()) {
            columns[c.ordinal()] = new byte[maxEvents * c.width];
        }
    }

    /** Events in the batch being built. */
    public int count() {
        return count;
    }

    public boolean isFull() {
        return count >= maxEvents;
    }

    public int maxEvents() {
        return maxEvents;
    }

    /** Entries of the stream's dictionary so far, counting the empty string (and pending ones). */
    public int dictionarySize() {
        return dictionarySize;
    }

    /**
     * Numbers the batch being built: its first event is the handler's event {@code n} and the
     * others follow consecutively ({@code EventBatch.first_event}). Call before the batch's first
     * {@code add}; a batch not numbered sends 0.
     */
    public void firstEvent(long n) {
        firstEvent = n;
    }

    /** Sequence number of the last batch built (0 before the first). */
    public long sequence() {
        return sequence;
    }

    /** The dictionary id of {@code s} on this stream, adding it when new ({@code null}/"" is 0). */
    public int intern(String s) {
        if (s == null || s.isEmpty()) {
            return 0;
        }
        Integer id = ids.get(s);
        if (id != null) {
            return id;
        }
        int next = dictionarySize++;
        ids.put(s, next);
        pending.add(fitted(s));
        return next;
    }

    /**
     * Appends one event read from ring slot {@code slot} (its fields at the offsets
     * {@link EventRing} defines). The caller checks {@link #isFull()} first.
     */
    public void add(EventRing ring, int slot) {
        add(ring.strings, slot * EventRing.STRINGS, ring.longs, slot * EventRing.LONGS,
                ring.ints, slot * EventRing.INTS);
    }

    /** Appends one event given in the {@link EventRing} slot layout. */
    public void add(String[] s, int so, long[] l, int lo, int[] i, int io) {
        if (count >= maxEvents) {
            throw new IllegalStateException("batch is full");
        }
        int row = count;
        putLong(Column.EVENT_TIME_US, row, l[lo + EventRing.L_EVENT_TIME_US]);
        for (int k = 0; k < CLIENT_IP_STRING; k++) {
            putInt(STRING_COLUMNS[k], row, intern(s[so + k]));
        }
        // the client's address, taken out of its source here, on the sender thread, so that the
        // request thread only keeps a reference to the string the gateway holds
        putInt(Column.CLIENT_IP, row, clientIpId(s[so + CLIENT_IP_STRING]));
        putByte(Column.HTTP_METHOD, row, i[io + EventRing.I_HTTP_METHOD]);
        putShort(Column.HTTP_STATUS, row, clamp(i[io + EventRing.I_HTTP_STATUS], 0xFFFF));
        putInt(Column.ERROR_CODE, row, i[io + EventRing.I_ERROR_CODE]);
        putInt(Column.LATENCY_US, row, (int) clampU32(l[lo + EventRing.L_LATENCY_US]));
        putInt(Column.BACKEND_LATENCY_US, row, (int) clampU32(l[lo + EventRing.L_BACKEND_LATENCY_US]));
        putLong(Column.REQUEST_BYTES, row, l[lo + EventRing.L_REQUEST_BYTES]);
        putLong(Column.RESPONSE_BYTES, row, l[lo + EventRing.L_RESPONSE_BYTES]);
        putByte(Column.KEY_TYPE, row, i[io + EventRing.I_KEY_TYPE]);
        putLong(Column.URI_HASH, row, l[lo + EventRing.L_URI_HASH]);
        putByte(Column.FLAGS, row, i[io + EventRing.I_FLAGS]);
        putShort(Column.TARGET_STATUS, row, clamp(i[io + EventRing.I_TARGET_STATUS], 0xFFFF));
        count = row + 1;
    }

    /** Builds the batch of every column (what the handler sends), and starts the next one. */
    public EventBatch build(long sentAtUs) {
        return build(sentAtUs, Column.ALL);
    }

    /**
     * Builds the batch with the columns of {@code presence} (required columns are always
     * included), and starts the next one. At least one event must have been added.
     */
    public EventBatch build(long sentAtUs, long presence) {
        if (count == 0) {
            throw new IllegalStateException("empty batch");
        }
        long mask = presence | Column.REQUIRED;
        EventBatch.Builder b = EventBatch.newBuilder()
                .setSequence(++sequence)
                .setCount(count)
                .setDictionaryBase(base)
                .addAllDictionaryAdditions(pending)
                .setSentAtUs(sentAtUs)
                .setFirstEvent(firstEvent);
        for (Column c : Column.values()) {
            if ((mask & c.bit()) != 0) {
                ByteString bytes = ByteString.copyFrom(columns[c.ordinal()], 0, count * c.width);
                Columns.set(b, c, bytes);
            }
        }
        base = dictionarySize;
        pending.clear();
        count = 0;
        firstEvent = 0;
        return b.build();
    }

    private void putByte(Column c, int row, int v) {
        columns[c.ordinal()][row] = (byte) v;
    }

    private void putShort(Column c, int row, int v) {
        byte[] a = columns[c.ordinal()];
        int p = row * 2;
        a[p] = (byte) v;
        a[p + 1] = (byte) (v >>> 8);
    }

    private void putInt(Column c, int row, int v) {
        byte[] a = columns[c.ordinal()];
        int p = row * 4;
        a[p] = (byte) v;
        a[p + 1] = (byte) (v >>> 8);
        a[p + 2] = (byte) (v >>> 16);
        a[p + 3] = (byte) (v >>> 24);
    }

    private void putLong(Column c, int row, long v) {
        byte[] a = columns[c.ordinal()];
        int p = row * 8;
        for (int k = 0; k < 8; k++) {
            a[p + k] = (byte) (v >>> (8 * k));
        }
    }

    /**
     * The dictionary id of the client's address in {@code source} ({@link ClientIp#addressRange}):
     * its hash as {@code "h:"} + 16 hex digits, the address itself (at most
     * {@link ClientIp#MAX_CHARS} characters), or 0 (off, or no address).
     */
    private int clientIpId(String source) {
        if (source == null || clientIp.mode() == ClientIp.Mode.OFF) {
            return 0;
        }
        long range = ClientIp.addressRange(source);
        if (range < 0) {
            return 0;
        }
        int from = (int) (range >>> 32);
        int to = (int) range;
        if (clientIp.mode() == ClientIp.Mode.HASH) {
            return internHash(clientIp.hash(source, from, to));
        }
        to = Math.min(to, from + ClientIp.MAX_CHARS);
        return intern(from == 0 && to == source.length() ? source : source.substring(from, to));
    }

    /** The dictionary id of {@link #hashed}({@code h}), formatting the string only the first time on this stream. */
    private int internHash(long h) {
        int mask = hashKeys.length - 1;
        int at = (int) (h ^ (h >>> 29) ^ (h >>> 47)) & mask;
        while (true) {
            long k = hashKeys[at];
            if (k == h) {
                return hashIds[at];
            }
            if (k == 0) {
                int id = intern(hashed(h));
                hashKeys[at] = h;
                hashIds[at] = id;
                if (++hashCount * 2 > hashKeys.length) {
                    growHashes();
                }
                return id;
            }
            at = (at + 1) & mask;
        }
    }

    private void growHashes() {
        long[] keys = hashKeys;
        int[] ids = hashIds;
        hashKeys = new long[keys.length * 2];
        hashIds = new int[keys.length * 2];
        int mask = hashKeys.length - 1;
        for (int k = 0; k < keys.length; k++) {
            long h = keys[k];
            if (h != 0) {
                int at = (int) (h ^ (h >>> 29) ^ (h >>> 47)) & mask;
                while (hashKeys[at] != 0) {
                    at = (at + 1) & mask;
                }
                hashKeys[at] = h;
                hashIds[at] = ids[k];
            }
        }
    }

    /** {@code "h:"} + the 16 lowercase hex digits of {@code hash} (most significant first). */
    public static String hashed(long hash) {
        char[] c = new char[18];
        c[0] = 'h';
        c[1] = ':';
        for (int k = 0; k < 16; k++) {
            c[2 + k] = HEX[(int) (hash >>> (60 - 4 * k)) & 0xF];
        }
        return new String(c);
    }

    private static int clamp(int v, int max) {
        return v < 0 ? 0 : Math.min(v, max);
    }

    private static long clampU32(long v) {
        return v < 0 ? 0 : Math.min(v, 0xFFFF_FFFFL);
    }

    /** {@code s} cut to at most {@link #MAX_STRING_BYTES} UTF-8 bytes on a character boundary. */
    static String fitted(String s) {
        if (s.length() * 3 <= MAX_STRING_BYTES) {
            return s;
        }
        byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
        if (utf8.length <= MAX_STRING_BYTES) {
            return s;
        }
        int end = MAX_STRING_BYTES;
        while (end > 0 && (utf8[end] & 0xC0) == 0x80) {
            end--; // back off continuation bytes so no character is split
        }
        return new String(utf8, 0, end, StandardCharsets.UTF_8);
    }
}
