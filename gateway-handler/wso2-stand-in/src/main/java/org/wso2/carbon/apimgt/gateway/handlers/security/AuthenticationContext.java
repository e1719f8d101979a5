/*
 * Compile-time stand-in written for vigie; NOT WSO2 code and never shipped (the handler jar
 * excludes this module). It declares only the members vigie uses, with the exact signatures
 * of WSO2's class, so code compiled against it links against the real class at run time.
 * Getters read from wso2/carbon-apimgt, components/apimgt/org.wso2.carbon.apimgt.gateway/src/
 * main/java/org/wso2/carbon/apimgt/gateway/handlers/security/AuthenticationContext.java (9.x,
 * APIM 4.x): a plain class of String getters; getApplicationUUID() is the one the 4.x analytics
 * (SynapseAnalyticsDataProvider.getApplication) publishes as applicationId.
 */
package org.wso2.carbon.apimgt.gateway.handlers.security;

public class AuthenticationContext {
    public boolean isAuthenticated() {
        throw new UnsupportedOperationException("stand-in");
    }

    public String getApplicationUUID() {
        throw new UnsupportedOperationException("stand-in");
    }

    public String getApplicationId() {
        throw new UnsupportedOperationException("stand-in");
    }

    public String getApplicationName() {
        throw new UnsupportedOperationException("stand-in");
    }

    public String getSubscriber() {
        throw new UnsupportedOperationException("stand-in");
    }

    public String getTier() {
        throw new UnsupportedOperationException("stand-in");
    }

    public String getKeyType() {
        throw new UnsupportedOperationException("stand-in");
    }

    public String getConsumerKey() {
        throw new UnsupportedOperationException("stand-in");
    }
}
