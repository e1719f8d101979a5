package io.vigie.gateway;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/**
 * The handler's version as the Maven build declares it ({@code project.version}), read once from
 * the resource {@code handler-version.properties} that the build filters. {@code "unknown"} if
 * the resource is missing or was not filtered (a build that bypassed Maven).
 */
public final class HandlerVersion {
    /** The version sent in {@code Hello.handler_version}. */
    public static final String VALUE = read();

    private HandlerVersion() {}

    static String read() {
        try (InputStream in = HandlerVersion.class.getResourceAsStream("handler-version.properties")) {
            if (in == null) {
                return "unknown";
            }
            Properties p = new Properties();
            p.load(in);
            String v = p.getProperty("version", "").trim();
            return v.isEmpty() || v.startsWith("${") ? "unknown" : v;
        } catch (IOException | RuntimeException e) {
            return "unknown";
        }
    }
}
