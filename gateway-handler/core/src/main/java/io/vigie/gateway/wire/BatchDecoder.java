package io.vigie.gateway.wire;

import com.google.protobuf.ByteString;
import io.vigie.wire.v1.EventBatch;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The receiving side of one stream, with the sidecar's validation rules: sequence, count,
 * dictionary base, column lengths, dictionary ids, positive event times. The handler never
 * receives batches; this exists so the Java side of the contract can be checked both ways
 * (test vectors, benchmarks' fake sidecar).
 */
public final class BatchDecoder {
    private final List<String> dictionary = new ArrayList<>(Collections.singletonList(""));
    private long nextSequence = 1;

    /** A batch that breaks the contract. */
    public static final class RefusedException extends Exception {
        private static final long serialVersionUID = 1L;

        public RefusedException(String message) {
            super(message);
        }
    }

    /** One decoded event: numbers by column (unsigned values as their bits), strings resolved. */
    public static final class Event {
        private final long[] numbers = new long[Column.values().length];
        private final String[] strings = new String[Column.values().length];

        /** The value of a numeric column (for uint64 columns, the bits: compare unsigned). */
        public long number(Column c) {
            return numbers[c.ordinal()];
        }

        /** The string of a dictionary column ("" when absent). */
        public String string(Column c) {
            return strings[c.ordinal()];
        }
    }

    /** Entries of the stream's dictionary, counting the empty string. */
    public int dictionarySize() {
        return dictionary.size();
    }

    /** Validates {@code b} and returns its events; a refused batch leaves the stream unchanged. */
    public List<Event> decode(EventBatch b) throws RefusedException {
        if (b.getSequence() != nextSequence) {
            throw new RefusedException("batch sequence " + b.getSequence() + ", expected " + nextSequence);
        }
        int n = b.getCount();
        if (n <= 0) {
            throw new RefusedException("batch count " + n);
        }
        if (b.getDictionaryBase() != dictionary.size()) {
            throw new RefusedException("dictionary_base " + b.getDictionaryBase() + ", the dictionary holds "
                    + dictionary.size());
        }
        int newSize = dictionary.size() + b.getDictionaryAdditionsCount();
        List<Event> events = new ArrayList<>(n);
        for (int k = 0; k < n; k++) {
            events.add(new Event());
        }
        for (Column c : Column.values()) {
            ByteString raw = Columns.get(b, c);
            if (raw.isEmpty()) {
                if (c.required) {
                    throw new RefusedException("column " + c.protoName() + " is missing");
                }
                for (Event e : events) {
                    e.numbers[c.ordinal()] = c.defaultValue;
                }
                continue;
            }
            if (raw.size() != n * c.width) {
                throw new RefusedException("column " + c.protoName() + " holds " + raw.size() + " bytes, expected "
                        + n + " x " + c.width);
            }
            ByteBuffer buf = raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            for (Event e : events) {
                long v;
                switch (c.width) {
                    case 1: v = buf.get() & 0xFFL; break;
                    case 2: v = buf.getShort() & 0xFFFFL; break;
                    case 4:
                        int x = buf.getInt();
                        // error_code is the one signed 32-bit column
                        v = c == Column.ERROR_CODE ? x : x & 0xFFFF_FFFFL;
                        break;
                    default: v = buf.getLong(); break;
                }
                if (c.dictionary && v >= newSize) {
                    throw new RefusedException("column " + c.protoName() + " uses dictionary id " + v
                            + ", the dictionary holds " + newSize + " entries");
                }
                e.numbers[c.ordinal()] = v;
            }
        }
        for (Event e : events) {
            if (e.numbers[Column.EVENT_TIME_US.ordinal()] <= 0) {
                throw new RefusedException("event_time_us must be positive");
            }
        }
        dictionary.addAll(b.getDictionaryAdditionsList());
        for (Event e : events) {
            for (Column c : Column.values()) {
                if (c.dictionary) {
                    e.strings[c.ordinal()] = dictionary.get((int) e.numbers[c.ordinal()]);
                }
            }
        }
        nextSequence++;
        return events;
    }
}
