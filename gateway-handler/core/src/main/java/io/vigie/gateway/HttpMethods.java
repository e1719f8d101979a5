package io.vigie.gateway;

/** {@code HttpMethod} numbers of the wire contract, and an allocation-free name lookup. */
public final class HttpMethods {
    public static final int UNSPECIFIED = 0;
    public static final int GET = 1;
    public static final int HEAD = 2;
    public static final int POST = 3;
    public static final int PUT = 4;
    public static final int DELETE = 5;
    public static final int PATCH = 6;
    public static final int OPTIONS = 7;
    public static final int OTHER = 8;

    private HttpMethods() {}

    /** The number of a method name (any case); {@code null}/empty is UNSPECIFIED. */
    public static int of(String name) {
        if (name == null || name.isEmpty()) {
            return UNSPECIFIED;
        }
        if (name.equalsIgnoreCase("GET")) {
            return GET;
        }
        if (name.equalsIgnoreCase("POST")) {
            return POST;
        }
        if (name.equalsIgnoreCase("PUT")) {
            return PUT;
        }
        if (name.equalsIgnoreCase("DELETE")) {
            return DELETE;
        }
        if (name.equalsIgnoreCase("HEAD")) {
            return HEAD;
        }
        if (name.equalsIgnoreCase("PATCH")) {
            return PATCH;
        }
        if (name.equalsIgnoreCase("OPTIONS")) {
            return OPTIONS;
        }
        return OTHER;
    }
}
