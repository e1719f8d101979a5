package io.vigie.wso2;

import io.vigie.gateway.RequestRecord;
import io.vigie.synapse.Consumers;
import io.vigie.synapse.SynapseNames;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.synapse.MessageContext;
import org.wso2.carbon.apimgt.gateway.handlers.security.AuthenticationContext;

/**
 * The caller as WSO2's authentication handler left it: the {@code AuthenticationContext} under
 * {@code __API_AUTH_CONTEXT}. If the APIM gateway classes are not visible to this jar (or differ),
 * it says so once and answers "unknown" from then on.
 */
final class Wso2Consumers implements Consumers<MessageContext> {
    private static final Logger LOG = Logger.getLogger(Wso2Consumers.class.getName());

    private volatile boolean usable = true;

    @Override
    public String applicationId(MessageContext ctx) {
        AuthenticationContext auth = auth(ctx);
        if (auth == null) {
            return null;
        }
        try {
            return auth.getApplicationUUID();
        } catch (LinkageError e) {
            unusable(e);
            return null;
        }
    }

    @Override
    public String describe(MessageContext ctx, RequestRecord r) {
        AuthenticationContext auth = auth(ctx);
        if (auth == null) {
            return null;
        }
        try {
            r.applicationId(auth.getApplicationUUID()).applicationName(auth.getApplicationName())
                    .applicationOwner(auth.getSubscriber()).subscriptionTier(auth.getTier());
            return auth.getKeyType();
        } catch (LinkageError e) {
            unusable(e);
            return null;
        }
    }

    private AuthenticationContext auth(MessageContext ctx) {
        if (!usable) {
            return null;
        }
        try {
            Object o = ctx.getProperty(SynapseNames.AUTH_CONTEXT);
            return o instanceof AuthenticationContext ? (AuthenticationContext) o : null;
        } catch (LinkageError e) {
            unusable(e);
            return null;
        }
    }

    private void unusable(LinkageError e) {
        usable = false;
        LOG.log(Level.WARNING, "vigie: WSO2's AuthenticationContext is not usable; application ids unknown", e);
    }
}
