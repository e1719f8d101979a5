package io.vigie.gateway;

/** {@code KeyType} numbers of the wire contract. */
public final class KeyTypes {
    public static final int UNSPECIFIED = 0;
    public static final int PRODUCTION = 1;
    public static final int SANDBOX = 2;

    private KeyTypes() {}

    /** PRODUCTION/SANDBOX (any case) to its number; anything else is UNSPECIFIED. */
    public static int of(String name) {
        if (name == null) {
            return UNSPECIFIED;
        }
        if (name.equalsIgnoreCase("PRODUCTION")) {
            return PRODUCTION;
        }
        if (name.equalsIgnoreCase("SANDBOX")) {
            return SANDBOX;
        }
        return UNSPECIFIED;
    }
}
