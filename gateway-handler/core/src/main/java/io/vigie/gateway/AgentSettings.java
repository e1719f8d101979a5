package io.vigie.gateway;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * The handler's settings: one typed object. WSO2 APIM 4.x passes no parameters to global
 * handlers, so each setting is read, in this order, from a JVM system property
 * ({@code -Dvigie.sidecar.address=...}), an environment variable ({@code VIGIE_SIDECAR_ADDRESS}),
 * the properties file named by {@code vigie.config} / {@code VIGIE_CONFIG}, then its default.
 * A value that does not parse is reported in {@link #problems()} and replaced by the default:
 * a bad setting never stops the gateway.
 */
public final class AgentSettings {
    /** Property naming an optional Java properties file with the same keys. */
    public static final String CONFIG_FILE = "vigie.config";

    /** Handler on/off; off makes it a no-op (no thread, no connection). */
    public final boolean enabled;
    /**
     * The sidecars' gRPC addresses, host:port each: every vigie instance of the fleet, each
     * receiving every event ({@code vigie.sidecar.addresses}, comma-separated; else the single
     * {@code vigie.sidecar.address}). Never empty, no address twice.
     */
    public final List<String> sidecarAddresses;
    /** The first of {@link #sidecarAddresses} (the only one in a fleet of one). */
    public final String sidecarAddress;
    /** Stable name of this gateway process (Hello.gateway_id); defaults to $HOSTNAME. */
    public final String gatewayId;
    /** Channel this gateway serves (main, sale, ...); empty = default. */
    public final String channel;
    /** WSO2 tenant domain. */
    public final String tenant;
    /** Data centre / region, free text. */
    public final String region;
    /** Events the queue holds; a full queue drops (counted), never blocks. */
    public final int queueCapacity;
    /** Most events per batch (the sidecar's Welcome may lower it). */
    public final int batchMaxEvents;
    /** A partial batch is sent after this many milliseconds. */
    public final long flushIntervalMs;
    /** GatewayReport period, milliseconds. */
    public final long reportIntervalMs;
    /** First reconnect delay, milliseconds (doubles up to the max). */
    public final long backoffInitialMs;
    public final long backoffMaxMs;
    /** While no sidecar is reachable, events older than this are dropped (counted). */
    public final long disconnectedHoldMs;
    /** Kill switch: false turns every ENFORCE directive into SHADOW on this gateway. */
    public final boolean enforcement;
    /** Register the JMX MBean. */
    public final boolean jmx;
    /**
     * At JVM exit (APIM 4.x never calls {@code handleServerShutDown}) the shutdown hook sends what
     * is queued and the last batch for at most this long, milliseconds; also the bound of close().
     */
    public final long shutdownFlushMs;
    /**
     * How the client's address is captured ({@code vigie.capture.client-ip} = hash, plain or
     * off; default hash), with the salt of {@code vigie.capture.client-ip-salt} (empty = a random
     * key per process). See {@link ClientIp}.
     */
    public final ClientIp clientIp;
    /** Whether {@link #clientIp} hashes with the configured salt (false: a random key, or no hash). */
    public final boolean clientIpSalted;
    /** TLS to the sidecar: PEM file of the CA that signed the sidecar's certificate; empty = plaintext. */
    public final String tlsCaFile;
    /** mTLS: PEM certificate chain this gateway presents to the sidecar (with {@link #tlsKeyFile}). */
    public final String tlsCertFile;
    /** mTLS: PEM private key (PKCS#8) of {@link #tlsCertFile}. */
    public final String tlsKeyFile;
    /** TLS: the host name the sidecar's certificate must carry, when it differs from the address. */
    public final String tlsAuthority;

    private final List<String> problems;

    private AgentSettings(Lookup in) {
        this.enabled = in.bool("vigie.enabled", true);
        this.sidecarAddresses = in.addresses("vigie.sidecar.addresses", "vigie.sidecar.address", "127.0.0.1:7355");
        this.sidecarAddress = sidecarAddresses.get(0);
        String host = in.env.get("HOSTNAME");
        this.gatewayId = in.string("vigie.gateway.id", host == null || host.isEmpty() ? "gateway" : host);
        this.channel = in.string("vigie.channel", "");
        this.tenant = in.string("vigie.tenant", "carbon.super");
        this.region = in.string("vigie.region", "");
        this.queueCapacity = (int) in.number("vigie.queue.capacity", 65_536, 2, 1 << 24);
        this.batchMaxEvents = (int) in.number("vigie.batch.max-events", 4_096, 1, 1 << 20);
        this.flushIntervalMs = in.number("vigie.flush.interval-ms", 5, 1, 60_000);
        this.reportIntervalMs = in.number("vigie.report.interval-ms", 5_000, 100, 3_600_000);
        this.backoffInitialMs = in.number("vigie.backoff.initial-ms", 100, 1, 60_000);
        this.backoffMaxMs = in.number("vigie.backoff.max-ms", 500, 1, 600_000);
        this.disconnectedHoldMs = in.number("vigie.disconnected.hold-ms", 10_000, 0, 3_600_000);
        this.enforcement = in.bool("vigie.enforcement", true);
        this.jmx = in.bool("vigie.jmx", true);
        this.shutdownFlushMs = in.number("vigie.shutdown.flush-ms", 2_000, 0, 60_000);
        String ipMode = in.string("vigie.capture.client-ip", "hash");
        String salt = in.string("vigie.capture.client-ip-salt", "");
        ClientIp ip = ClientIp.parse(ipMode, salt);
        if (ip == null) {
            in.problems.add("vigie.capture.client-ip=" + ipMode + ": expected hash, plain or off; using hash");
            ip = ClientIp.hashed(salt);
        }
        if (ip.mode() != ClientIp.Mode.HASH && !salt.isEmpty()) {
            in.problems.add("vigie.capture.client-ip-salt is ignored: vigie.capture.client-ip=" + ip);
        }
        this.clientIp = ip;
        this.clientIpSalted = ip.mode() == ClientIp.Mode.HASH && !salt.isEmpty();
        this.tlsCaFile = in.string("vigie.tls.ca-file", "");
        this.tlsCertFile = in.string("vigie.tls.cert-file", "");
        this.tlsKeyFile = in.string("vigie.tls.key-file", "");
        this.tlsAuthority = in.string("vigie.tls.authority", "");
        if (tlsCertFile.isEmpty() != tlsKeyFile.isEmpty()) {
            in.problems.add("vigie.tls.cert-file and vigie.tls.key-file go together; the client certificate is not used");
        }
        if (!tlsCertFile.isEmpty() && tlsCaFile.isEmpty()) {
            in.problems.add("vigie.tls.cert-file needs vigie.tls.ca-file (mTLS is TLS first); plaintext is used");
        }
        this.problems = Collections.unmodifiableList(in.problems);
    }

    /** Settings from this JVM's system properties and environment. */
    public static AgentSettings fromEnvironment() {
        Properties sys = System.getProperties();
        Map<String, String> props = new java.util.HashMap<>();
        for (String k : sys.stringPropertyNames()) {
            props.put(k, sys.getProperty(k));
        }
        return from(props, System.getenv());
    }

    /** Settings from the given system properties and environment (tests pass their own). */
    public static AgentSettings from(Map<String, String> properties, Map<String, String> env) {
        return new AgentSettings(new Lookup(properties, env));
    }

    /** What could not be used, one sentence each (logged by the adapter at startup). */
    public List<String> problems() {
        return problems;
    }

    /** The environment variable of a property: vigie.sidecar.address -> VIGIE_SIDECAR_ADDRESS. */
    public static String envName(String key) {
        return key.toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_');
    }

    @Override
    public String toString() {
        return "enabled=" + enabled + " sidecars=" + String.join(",", sidecarAddresses) + " gateway=" + gatewayId + " channel="
                + channel + " tenant=" + tenant + " region=" + region + " queue=" + queueCapacity + " batch="
                + batchMaxEvents + " flush_ms=" + flushIntervalMs + " enforcement=" + enforcement + " client_ip=" + clientIp
                + (clientIp.mode() == ClientIp.Mode.HASH ? "(" + (clientIpSalted ? "salted" : "random key") + ")" : "") + " tls="
                + (tlsCaFile.isEmpty() ? "off" : tlsCertFile.isEmpty() || tlsKeyFile.isEmpty() ? "on" : "mutual");
    }

    private static final class Lookup {
        final Map<String, String> props;
        final Map<String, String> env;
        final Properties file = new Properties();
        final List<String> problems = new ArrayList<>();

        Lookup(Map<String, String> props, Map<String, String> env) {
            this.props = props;
            this.env = env;
            String path = raw(CONFIG_FILE);
            if (path != null && !path.isEmpty()) {
                Path p = Paths.get(path);
                try (InputStream in = Files.newInputStream(p)) {
                    file.load(in);
                } catch (IOException | RuntimeException e) {
                    problems.add(CONFIG_FILE + "=" + path + ": cannot read (" + e + "); using the other sources");
                }
            }
        }

        private String raw(String key) {
            String v = props.get(key);
            if (v == null) {
                v = env.get(envName(key));
            }
            return v == null ? null : v.trim();
        }

        String value(String key) {
            String v = raw(key);
            if (v == null) {
                v = file.getProperty(key);
                v = v == null ? null : v.trim();
            }
            return v;
        }

        String string(String key, String def) {
            String v = value(key);
            return v == null ? def : v;
        }

        boolean bool(String key, boolean def) {
            String v = value(key);
            if (v == null || v.isEmpty()) {
                return def;
            }
            if (v.equalsIgnoreCase("true") || v.equals("1") || v.equalsIgnoreCase("yes")) {
                return true;
            }
            if (v.equalsIgnoreCase("false") || v.equals("0") || v.equalsIgnoreCase("no")) {
                return false;
            }
            problems.add(key + "=" + v + ": not a boolean (true/false); using " + def);
            return def;
        }

        long number(String key, long def, long min, long max) {
            String v = value(key);
            if (v == null || v.isEmpty()) {
                return def;
            }
            try {
                long n = Long.parseLong(v.replace("_", ""));
                if (n < min || n > max) {
                    problems.add(key + "=" + v + ": outside " + min + ".." + max + "; using " + def);
                    return def;
                }
                return n;
            } catch (NumberFormatException e) {
                problems.add(key + "=" + v + ": not an integer; using " + def);
                return def;
            }
        }

        /**
         * The list {@code listKey} (comma-separated host:port), else the single {@code oneKey},
         * else {@code def}. A bad entry is left out and a repeated one kept once (each reported);
         * a list with no good entry gives {@code def}.
         */
        List<String> addresses(String listKey, String oneKey, String def) {
            String list = value(listKey);
            if (list == null || list.isEmpty()) {
                return List.of(address(oneKey, def));
            }
            if (value(oneKey) != null && !value(oneKey).isEmpty()) {
                problems.add(oneKey + " is ignored: " + listKey + " is set");
            }
            List<String> out = new ArrayList<>();
            for (String part : list.split(",")) {
                String a = part.trim();
                if (a.isEmpty()) {
                    continue;
                }
                String checked = checkAddress(listKey, a, null);
                if (checked == null) {
                    continue;
                }
                if (out.contains(checked)) {
                    problems.add(listKey + ": " + checked + " is listed twice; streaming to it once");
                    continue;
                }
                out.add(checked);
            }
            if (out.isEmpty()) {
                problems.add(listKey + "=" + list + ": no usable address; using " + def);
                out.add(def);
            }
            return Collections.unmodifiableList(out);
        }

        String address(String key, String def) {
            String v = value(key);
            if (v == null || v.isEmpty()) {
                return def;
            }
            return checkAddress(key, v, def);
        }

        /** {@code v} when it is host:port, else {@code def} (reported). */
        String checkAddress(String key, String v, String def) {
            String using = def == null ? "leaving it out" : "using " + def;
            int colon = v.lastIndexOf(':');
            if (colon <= 0 || colon == v.length() - 1) {
                problems.add(key + "=" + v + ": expected host:port; " + using);
                return def;
            }
            try {
                int port = Integer.parseInt(v.substring(colon + 1));
                if (port < 1 || port > 65535) {
                    throw new NumberFormatException();
                }
            } catch (NumberFormatException e) {
                problems.add(key + "=" + v + ": bad port; " + using);
                return def;
            }
            return v;
        }
    }
}
