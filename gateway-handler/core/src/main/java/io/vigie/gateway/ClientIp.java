package io.vigie.gateway;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Locale;

/**
 * How the handler captures the client's address ({@code vigie.capture.client-ip}):
 * <ul>
 *   <li>{@code hash} (the default): {@code "h:"} + 16 hex digits of SipHash-2-4 of the address's
 *       UTF-8 bytes under a 128-bit key: the first 16 bytes of SHA-256 of the salt
 *       ({@code vigie.capture.client-ip-salt}, UTF-8), {@code k0} = bytes 0-7 and {@code k1} =
 *       bytes 8-15, little-endian; without a salt, a random key per process (addresses then
 *       compare only within one gateway process's life). The hex digits are the 64-bit result,
 *       most significant first. Without the salt the hash cannot be reversed, even over the
 *       2^32 IPv4 addresses;</li>
 *   <li>{@code plain}: the address as WSO2 reads it, at most {@link #MAX_CHARS} characters;</li>
 *   <li>{@code off}: nothing.</li>
 * </ul>
 * The address is read as WSO2's analytics reads it ({@code DataPublisherUtil.getEndUserIP}): the
 * first entry of {@code X-Forwarded-For}, else the connection's remote address; a port after a
 * single ':' (IPv4) is dropped ({@link #addressRange}).
 *
 * <p>The request thread only keeps a reference to the string the address is read from; the
 * sender thread's encoder finds the address in it and hashes it ({@link #hash}: no allocation,
 * no exception, no I/O).
 */
public final class ClientIp {
    /** The capture mode. */
    public enum Mode { HASH, PLAIN, OFF }

    /** Longest address kept ({@code plain}) or hashed: longer values are cut. */
    public static final int MAX_CHARS = 64;

    private static final ClientIp PLAIN = new ClientIp(Mode.PLAIN, 0, 0);
    private static final ClientIp OFF = new ClientIp(Mode.OFF, 0, 0);

    private final Mode mode;
    private final long k0;
    private final long k1;

    private ClientIp(Mode mode, long k0, long k1) {
        this.mode = mode;
        this.k0 = k0;
        this.k1 = k1;
    }

    /** Hashing with the key derived from {@code salt}; a null or empty salt gives a random key. */
    public static ClientIp hashed(String salt) {
        if (salt == null || salt.isEmpty()) {
            SecureRandom r = new SecureRandom();
            return new ClientIp(Mode.HASH, r.nextLong(), r.nextLong());
        }
        byte[] d;
        try {
            d = MessageDigest.getInstance("SHA-256").digest(salt.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
        return new ClientIp(Mode.HASH, littleEndian(d, 0), littleEndian(d, 8));
    }

    public static ClientIp plain() {
        return PLAIN;
    }

    public static ClientIp off() {
        return OFF;
    }

    /** {@code hash}, {@code plain} or {@code off} (any case) with its salt; {@code null} for another word. */
    public static ClientIp parse(String mode, String salt) {
        switch (mode.trim().toLowerCase(Locale.ROOT)) {
            case "hash": return hashed(salt);
            case "plain": return plain();
            case "off": return off();
            default: return null;
        }
    }

    public Mode mode() {
        return mode;
    }

    /**
     * The salted hash of {@code s[from, to)} (at most {@link #MAX_CHARS} characters of it); never
     * 0, which means "none" on the wire.
     */
    public long hash(String s, int from, int to) {
        long h = sipHash24(k0, k1, s, from, Math.min(to, from + MAX_CHARS));
        return h == 0 ? 1 : h;
    }

    /**
     * Where the address lies in a header or property value, as WSO2 reads it: up to the first
     * ',' (the first {@code X-Forwarded-For} entry), spaces trimmed, and a port after a single
     * ':' dropped (IPv6 addresses have several). Returns {@code from << 32 | to}, or -1 when
     * nothing is left. Allocation-free.
     */
    public static long addressRange(String v) {
        if (v == null) {
            return -1;
        }
        int end = v.indexOf(',');
        if (end < 0) {
            end = v.length();
        }
        int from = 0;
        while (from < end && v.charAt(from) <= ' ') {
            from++;
        }
        while (end > from && v.charAt(end - 1) <= ' ') {
            end--;
        }
        int colon = -1;
        int colons = 0;
        for (int i = from; i < end; i++) {
            if (v.charAt(i) == ':') {
                colons++;
                colon = i;
            }
        }
        if (colons == 1) {
            end = colon;
        }
        return from >= end ? -1 : ((long) from << 32) | end;
    }

    /**
     * SipHash-2-4 (Aumasson and Bernstein, 2012) of the UTF-8 encoding of {@code s[from, to)}
     * under the key ({@code k0}, {@code k1}); a lone surrogate counts as '?', as Java's encoder
     * writes it. No allocation.
     */
    public static long sipHash24(long k0, long k1, CharSequence s, int from, int to) {
        long v0 = k0 ^ 0x736f6d6570736575L;
        long v1 = k1 ^ 0x646f72616e646f6dL;
        long v2 = k0 ^ 0x6c7967656e657261L;
        long v3 = k1 ^ 0x7465646279746573L;
        long m = 0;
        int inWord = 0;
        long total = 0;
        int pending = 0; // UTF-8 bytes still to feed, lowest first
        int pendingCount = 0;
        int i = from;
        // addresses are ASCII: whole 8-character words first, while they are (one byte a character)
        while (to - i >= 8) {
            long w = 0;
            int k = 0;
            for (; k < 8; k++) {
                char c = s.charAt(i + k);
                if (c >= 0x80) {
                    break;
                }
                w |= (long) c << (8 * k);
            }
            if (k < 8) {
                break; // a non-ASCII character: the general path from this word on
            }
            i += 8;
            total += 8;
            v3 ^= w;
            for (int r = 0; r < 2; r++) {
                v0 += v1; v1 = Long.rotateLeft(v1, 13); v1 ^= v0; v0 = Long.rotateLeft(v0, 32);
                v2 += v3; v3 = Long.rotateLeft(v3, 16); v3 ^= v2;
                v0 += v3; v3 = Long.rotateLeft(v3, 21); v3 ^= v0;
                v2 += v1; v1 = Long.rotateLeft(v1, 17); v1 ^= v2; v2 = Long.rotateLeft(v2, 32);
            }
            v0 ^= w;
        }
        while (true) {
            int b;
            if (pendingCount > 0) {
                b = pending & 0xFF;
                pending >>>= 8;
                pendingCount--;
            } else if (i < to) {
                char c = s.charAt(i++);
                if (c < 0x80) {
                    b = c;
                } else if (c < 0x800) {
                    b = 0xC0 | (c >>> 6);
                    pending = 0x80 | (c & 0x3F);
                    pendingCount = 1;
                } else if (Character.isHighSurrogate(c) && i < to && Character.isLowSurrogate(s.charAt(i))) {
                    int cp = Character.toCodePoint(c, s.charAt(i++));
                    b = 0xF0 | (cp >>> 18);
                    pending = (0x80 | ((cp >>> 12) & 0x3F)) | (0x80 | ((cp >>> 6) & 0x3F)) << 8
                            | (0x80 | (cp & 0x3F)) << 16;
                    pendingCount = 3;
                } else if (Character.isSurrogate(c)) {
                    b = '?';
                } else {
                    b = 0xE0 | (c >>> 12);
                    pending = (0x80 | ((c >>> 6) & 0x3F)) | (0x80 | (c & 0x3F)) << 8;
                    pendingCount = 2;
                }
            } else {
                break;
            }
            m |= (long) b << (8 * inWord);
            total++;
            if (++inWord == 8) {
                v3 ^= m;
                for (int r = 0; r < 2; r++) {
                    v0 += v1; v1 = Long.rotateLeft(v1, 13); v1 ^= v0; v0 = Long.rotateLeft(v0, 32);
                    v2 += v3; v3 = Long.rotateLeft(v3, 16); v3 ^= v2;
                    v0 += v3; v3 = Long.rotateLeft(v3, 21); v3 ^= v0;
                    v2 += v1; v1 = Long.rotateLeft(v1, 17); v1 ^= v2; v2 = Long.rotateLeft(v2, 32);
                }
                v0 ^= m;
                m = 0;
                inWord = 0;
            }
        }
        long last = m | (total & 0xFF) << 56;
        v3 ^= last;
        for (int r = 0; r < 2; r++) {
            v0 += v1; v1 = Long.rotateLeft(v1, 13); v1 ^= v0; v0 = Long.rotateLeft(v0, 32);
            v2 += v3; v3 = Long.rotateLeft(v3, 16); v3 ^= v2;
            v0 += v3; v3 = Long.rotateLeft(v3, 21); v3 ^= v0;
            v2 += v1; v1 = Long.rotateLeft(v1, 17); v1 ^= v2; v2 = Long.rotateLeft(v2, 32);
        }
        v0 ^= last;
        v2 ^= 0xFF;
        for (int r = 0; r < 4; r++) {
            v0 += v1; v1 = Long.rotateLeft(v1, 13); v1 ^= v0; v0 = Long.rotateLeft(v0, 32);
            v2 += v3; v3 = Long.rotateLeft(v3, 16); v3 ^= v2;
            v0 += v3; v3 = Long.rotateLeft(v3, 21); v3 ^= v0;
            v2 += v1; v1 = Long.rotateLeft(v1, 17); v1 ^= v2; v2 = Long.rotateLeft(v2, 32);
        }
        return v0 ^ v1 ^ v2 ^ v3;
    }

    private static long littleEndian(byte[] b, int at) {
        long v = 0;
        for (int k = 7; k >= 0; k--) {
            v = (v << 8) | (b[at + k] & 0xFF);
        }
        return v;
    }

    @Override
    public String toString() {
        return mode.name().toLowerCase(Locale.ROOT); // never the key
    }
}
