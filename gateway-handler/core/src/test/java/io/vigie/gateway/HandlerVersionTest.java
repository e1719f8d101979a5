package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import org.junit.jupiter.api.Test;

class HandlerVersionTest {
    @Test
    void theVersionSentInHelloIsThePomsVersion() {
        String pom = System.getProperty("vigie.projectVersion");
        assertNotNull(pom, "surefire passes the pom's version");
        assertEquals(pom, HandlerVersion.VALUE);
        assertEquals(pom, VigieAgent.VERSION);
    }
}
