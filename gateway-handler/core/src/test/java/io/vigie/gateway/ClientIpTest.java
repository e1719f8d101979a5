package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.wire.BatchEncoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ClientIpTest {
    /** Reads {@code v}'s address range as a string (null for none). */
    private static String address(String v) {
        long r = ClientIp.addressRange(v);
        return r < 0 ? null : v.substring((int) (r >>> 32), (int) r);
    }

    @Test
    void sipHashMatchesThePapersTestVector() {
        // SipHash-2-4, key 00..0f, message 00..0e (15 bytes): a129ca6149be45e5 (Aumasson and Bernstein, appendix A)
        StringBuilder msg = new StringBuilder();
        for (int k = 0; k < 15; k++) {
            msg.append((char) k);
        }
        assertEquals(0xa129ca6149be45e5L,
                ClientIp.sipHash24(0x0706050403020100L, 0x0f0e0d0c0b0a0908L, msg, 0, msg.length()));
    }

    /** A plain twin of SipHash-2-4 over bytes, written from the paper's description. */
    private static long naiveSipHash(long k0, long k1, byte[] msg) {
        long[] v = {k0 ^ 0x736f6d6570736575L, k1 ^ 0x646f72616e646f6dL, k0 ^ 0x6c7967656e657261L,
            k1 ^ 0x7465646279746573L};
        byte[] padded = new byte[(msg.length / 8 + 1) * 8];
        System.arraycopy(msg, 0, padded, 0, msg.length);
        padded[padded.length - 1] = (byte) msg.length;
        for (int w = 0; w < padded.length; w += 8) {
            long m = java.nio.ByteBuffer.wrap(padded, w, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
            v[3] ^= m;
            round(v);
            round(v);
            v[0] ^= m;
        }
        v[2] ^= 0xff;
        for (int r = 0; r < 4; r++) {
            round(v);
        }
        return v[0] ^ v[1] ^ v[2] ^ v[3];
    }

    private static void round(long[] v) {
        v[0] += v[1];
        v[1] = Long.rotateLeft(v[1], 13) ^ v[0];
        v[0] = Long.rotateLeft(v[0], 32);
        v[2] += v[3];
        v[3] = Long.rotateLeft(v[3], 16) ^ v[2];
        v[0] += v[3];
        v[3] = Long.rotateLeft(v[3], 21) ^ v[0];
        v[2] += v[1];
        v[1] = Long.rotateLeft(v[1], 17) ^ v[2];
        v[2] = Long.rotateLeft(v[2], 32);
    }

    @Test
    void sipHashOfTextIsThatOfItsUtf8Bytes() {
        long k0 = 0x0706050403020100L;
        long k1 = 0x0f0e0d0c0b0a0908L;
        assertEquals(0x726fdb47dd0e0e31L, ClientIp.sipHash24(k0, k1, "", 0, 0), "the reference's empty-message vector");
        String[] texts = {"", "1", "203.0.113.7", "2001:db8:85a3::8a2e:370:7334", "fe80::1%eth0",
            "fe80::1%\u00e9\u20ac\ud83d\ude00", "12345678", "123456789abcdef0", "\ud800x"};
        for (String t : texts) {
            byte[] utf8 = t.getBytes(StandardCharsets.UTF_8);
            assertEquals(naiveSipHash(k0, k1, utf8), ClientIp.sipHash24(k0, k1, t, 0, t.length()), t);
            assertEquals(naiveSipHash(5, 7, utf8), ClientIp.sipHash24(5, 7, "ab" + t, 2, t.length() + 2), t);
        }
    }

    @Test
    void theSaltMakesTheKeyAsDocumented() throws Exception {
        byte[] d = MessageDigest.getInstance("SHA-256").digest("pepper".getBytes(StandardCharsets.UTF_8));
        long k0 = 0;
        long k1 = 0;
        for (int k = 7; k >= 0; k--) {
            k0 = (k0 << 8) | (d[k] & 0xFF);
            k1 = (k1 << 8) | (d[8 + k] & 0xFF);
        }
        ClientIp ip = ClientIp.hashed("pepper");
        assertEquals(ClientIp.sipHash24(k0, k1, "203.0.113.7", 0, 11), ip.hash("203.0.113.7", 0, 11));
        assertEquals(ip.hash("203.0.113.7", 0, 11), ClientIp.hashed("pepper").hash("203.0.113.7", 0, 11),
                "one salt, one hash: across gateways and restarts");
        assertNotEquals(ip.hash("203.0.113.7", 0, 11), ClientIp.hashed("salt").hash("203.0.113.7", 0, 11));
        assertNotEquals(ClientIp.hashed(null).hash("203.0.113.7", 0, 11),
                ClientIp.hashed(null).hash("203.0.113.7", 0, 11), "no salt: a random key per process");
        assertEquals("hash", ip.toString(), "the key is never printed");
    }

    @Test
    void hashesAreDistinctOverManyAddressesAndNeverZero() {
        ClientIp ip = ClientIp.hashed("s");
        Set<Long> seen = new HashSet<>();
        for (int a = 0; a < 256; a++) {
            for (int b = 0; b < 256; b++) {
                String v = "10." + a + "." + b + ".1";
                long h = ip.hash(v, 0, v.length());
                assertNotEquals(0, h);
                seen.add(h);
            }
        }
        assertEquals(65_536, seen.size());
    }

    @Test
    void theAddressIsReadAsWso2ReadsIt() {
        assertEquals("203.0.113.7", address("203.0.113.7, 10.0.0.1, 10.0.0.2"), "X-Forwarded-For: the first entry");
        assertEquals("203.0.113.7", address("  203.0.113.7 ,10.0.0.1"));
        assertEquals("203.0.113.7", address("203.0.113.7:51234"), "an IPv4 port is dropped");
        assertEquals("2001:db8::1", address("2001:db8::1"), "IPv6 keeps its colons");
        assertEquals("127.0.0.1", address("127.0.0.1"));
        assertNull(address(""));
        assertNull(address(" , 10.0.0.1"));
        assertNull(address(null));
        assertNull(address(":80"));
    }

    /** The client_ip string the encoder writes for the address source {@code v} in this mode. */
    private static String encoded(ClientIp ip, String v) throws Exception {
        BatchEncoder enc = new BatchEncoder(1, ip);
        String[] s = new String[io.vigie.gateway.queue.EventRing.STRINGS];
        s[3] = "Orders";
        s[4] = "v1";
        s[10] = v;
        long[] l = new long[io.vigie.gateway.queue.EventRing.LONGS];
        l[io.vigie.gateway.queue.EventRing.L_EVENT_TIME_US] = 1;
        enc.add(s, 0, l, 0, new int[io.vigie.gateway.queue.EventRing.INTS], 0);
        return new io.vigie.gateway.wire.BatchDecoder().decode(enc.build(1)).get(0)
                .string(io.vigie.gateway.wire.Column.CLIENT_IP);
    }

    @Test
    void theEncoderWritesEachModeAsItSays() throws Exception {
        ClientIp salted = ClientIp.hashed("s");
        String h = encoded(salted, " 203.0.113.7:4711, 10.0.0.1");
        assertEquals(BatchEncoder.hashed(salted.hash("203.0.113.7", 0, 11)), h, "the address taken out, then hashed");
        assertTrue(h.matches("h:[0-9a-f]{16}"), h);
        assertEquals("203.0.113.7", encoded(ClientIp.plain(), "203.0.113.7, 10.0.0.1"));
        assertEquals("2001:db8::7", encoded(ClientIp.plain(), "2001:db8::7"));
        assertEquals("9".repeat(ClientIp.MAX_CHARS), encoded(ClientIp.plain(), "9".repeat(10_000)), "bounded");
        assertEquals("", encoded(ClientIp.off(), "203.0.113.7"));
        assertEquals("", encoded(salted, " , 10.0.0.1"), "no address in it: none");
        assertEquals("", encoded(salted, null));
    }

    @Test
    void aLongValueHashesItsFirstCharactersOnly() {
        ClientIp ip = ClientIp.hashed("s");
        String huge = "1".repeat(100_000);
        assertEquals(ip.hash(huge, 0, ClientIp.MAX_CHARS), ip.hash(huge, 0, huge.length()));
    }

    @Test
    void theSettingsChooseTheModeAndReportABadOne() {
        Map<String, String> none = Map.of();
        AgentSettings def = AgentSettings.from(none, none);
        assertEquals(ClientIp.Mode.HASH, def.clientIp.mode());
        assertTrue(!def.clientIpSalted && def.problems().isEmpty());
        AgentSettings salted = AgentSettings.from(Map.of("vigie.capture.client-ip-salt", "pepper"), none);
        assertTrue(salted.clientIpSalted);
        assertEquals(ClientIp.hashed("pepper").hash("1.2.3.4", 0, 7), salted.clientIp.hash("1.2.3.4", 0, 7));
        assertTrue(!salted.toString().contains("pepper"), salted.toString());
        assertEquals(ClientIp.Mode.PLAIN,
                AgentSettings.from(none, Map.of("VIGIE_CAPTURE_CLIENT_IP", "PLAIN")).clientIp.mode());
        assertEquals(ClientIp.Mode.OFF, AgentSettings.from(Map.of("vigie.capture.client-ip", "off"), none).clientIp.mode());
        AgentSettings bad = AgentSettings.from(Map.of("vigie.capture.client-ip", "sha1"), none);
        assertEquals(ClientIp.Mode.HASH, bad.clientIp.mode());
        assertEquals(java.util.List.of("vigie.capture.client-ip=sha1: expected hash, plain or off; using hash"),
                bad.problems());
        AgentSettings ignored = AgentSettings.from(
                Map.of("vigie.capture.client-ip", "plain", "vigie.capture.client-ip-salt", "x"), none);
        assertEquals(java.util.List.of("vigie.capture.client-ip-salt is ignored: vigie.capture.client-ip=plain"),
                ignored.problems());
    }
}
