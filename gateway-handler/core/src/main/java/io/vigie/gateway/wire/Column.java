package io.vigie.gateway.wire;

/**
 * The per-event columns of {@code EventBatch}, in proto field order (which is also the canonical
 * order in which dictionary columns are interned within an event). Mirrors {@code COLUMNS} in
 * {@code sidecar/vigie/wire/columns.py}: width in bytes on the wire, whether the column holds
 * dictionary ids, whether the sidecar refuses a batch without it, and the value it assumes when
 * an optional column is left out.
 */
public enum Column {
    EVENT_TIME_US(10, 8, false, true, 0),
    APPLICATION_ID(11, 4, true, true, 0),
    APPLICATION_NAME(12, 4, true, false, 0),
    APPLICATION_OWNER(13, 4, true, false, 0),
    API_NAME(14, 4, true, true, 0),
    API_VERSION(15, 4, true, true, 0),
    API_CONTEXT(16, 4, true, false, 0),
    RESOURCE_TEMPLATE(17, 4, true, false, 0),
    HTTP_METHOD(18, 1, false, false, 0),
    HTTP_STATUS(19, 2, false, true, 0),
    ERROR_CODE(20, 4, false, false, 0),
    LATENCY_US(21, 4, false, false, 0),
    BACKEND_LATENCY_US(22, 4, false, false, 0),
    REQUEST_BYTES(23, 8, false, false, -1),
    RESPONSE_BYTES(24, 8, false, false, -1),
    KEY_TYPE(25, 1, false, false, 0),
    SUBSCRIPTION_TIER(26, 4, true, false, 0),
    URI_HASH(27, 8, false, false, 0),
    FLAGS(28, 1, false, false, 0),
    TENANT(29, 4, true, false, 0),
    API_ID(30, 4, true, false, 0),
    CLIENT_IP(31, 4, true, false, 0),
    TARGET_STATUS(32, 2, false, false, 0);

    /** Every column: the handler always sends them all. */
    public static final long ALL = (1L << values().length) - 1;
    /** The columns the sidecar requires in every batch. */
    public static final long REQUIRED;

    static {
        long m = 0;
        for (Column c : values()) {
            if (c.required) {
                m |= c.bit();
            }
        }
        REQUIRED = m;
    }

    private static final Column[] VALUES = values();

    /** Field number in {@code EventBatch}. */
    public final int field;
    /** Bytes per value on the wire (little-endian). */
    public final int width;
    /** Holds uint32 ids into the stream's dictionary. */
    public final boolean dictionary;
    /** A batch without this column is refused by the sidecar. */
    public final boolean required;
    /** Value of every event when an optional column is left out. */
    public final long defaultValue;

    Column(int field, int width, boolean dictionary, boolean required, long defaultValue) {
        this.field = field;
        this.width = width;
        this.dictionary = dictionary;
        this.required = required;
        this.defaultValue = defaultValue;
    }

    /** Bit of this column in a presence mask. */
    public long bit() {
        return 1L << ordinal();
    }

    /** Proto field name (snake case), as in the test vectors. */
    public String protoName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    /** The column of a proto field name, or {@code null}. */
    public static Column byProtoName(String name) {
        for (Column c : VALUES) {
            if (c.protoName().equals(name)) {
                return c;
            }
        }
        return null;
    }

    static Column at(int ordinal) {
        return VALUES[ordinal];
    }
}
