package io.vigie.synapse3;

import io.vigie.gateway.AgentSettings;
import io.vigie.gateway.Clock;
import io.vigie.gateway.EventFlags;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.RequestRecord;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.axis2.AxisFault;
import org.apache.synapse.MessageContext;
import org.apache.axiom.om.OMAbstractFactory;
import org.apache.axiom.om.OMElement;
import org.apache.axiom.om.OMFactory;
import org.apache.axiom.soap.SOAPBody;
import org.apache.synapse.core.axis2.Axis2MessageContext;
import org.apache.synapse.core.axis2.Axis2Sender;
import org.apache.synapse.rest.Handler;

/**
 * vigie's entry class for Apache Synapse 3 (which has no global handlers and no WSO2 API
 * Manager properties): a REST API handler, {@code <handlers><handler
 * class="io.vigie.synapse3.VigieApiHandler"/></handlers>} in an {@code <api>}. Same core as the
 * WSO2 adapter: checks the directive table on the request (scope: API name), captures the
 * request on the response. Never throws into mediation.
 */
public class VigieApiHandler implements Handler {
    private static final Logger LOG = Logger.getLogger(VigieApiHandler.class.getName());
    static final String START_US = "vigie.request.start.us";
    static final String REFUSED = "vigie.refused";

    private final VigieAgent agent;
    private final Clock clock = Clock.SYSTEM;

    /** The constructor Synapse calls. */
    public VigieApiHandler() {
        this.agent = Shared.agent();
    }

    @Override
    public boolean handleRequest(MessageContext ctx) {
        if (agent == null) {
            return true;
        }
        try {
            ctx.setProperty(START_US, clock.wallMicros());
            Rule refusal = agent.check(null, apiName(ctx), null);
            if (refusal != null && ctx instanceof Axis2MessageContext) {
                org.apache.axis2.context.MessageContext axis2 = ((Axis2MessageContext) ctx).getAxis2MessageContext();
                setFaultBody(axis2, refusal);
                axis2.setProperty("messageType", "application/xml");
                axis2.setProperty("ContentType", "application/xml");
                axis2.setProperty("HTTP_SC", 429);
                axis2.removeProperty("NO_ENTITY_BODY"); // a GET has none; the refusal has one
                // write the new envelope instead of relaying the request's unread pipe
                axis2.setProperty("message.builder.invoked", Boolean.TRUE);
                ctx.setProperty("ERROR_CODE", refusal.errorCode());
                ctx.setProperty(REFUSED, Boolean.TRUE);
                ctx.setResponse(true);
                ctx.setTo(null);
                capture(ctx, 429);
                Axis2Sender.sendBack(ctx);
                return false;
            }
        } catch (AxisFault | RuntimeException | LinkageError e) {
            agent.countAdapterError();
            LOG.log(Level.FINE, "vigie: handler error (request unaffected)", e);
        }
        return true;
    }

    @Override
    public boolean handleResponse(MessageContext ctx) {
        if (agent == null) {
            return true;
        }
        try {
            Object sc = ((Axis2MessageContext) ctx).getAxis2MessageContext().getProperty("HTTP_SC");
            capture(ctx, sc instanceof Integer ? (Integer) sc : sc instanceof String ? Integer.parseInt((String) sc) : 0);
        } catch (RuntimeException | LinkageError e) {
            agent.countAdapterError();
            LOG.log(Level.FINE, "vigie: handler error (request unaffected)", e);
        }
        return true;
    }

    /**
     * WSO2's fault shape as XML ({@code <fault><code/><message/><description/></fault>}): Apache
     * Synapse 3 has no JSON payload API (WSO2's JsonUtil is a fork addition).
     */
    private static void setFaultBody(org.apache.axis2.context.MessageContext axis2, Rule rule) throws AxisFault {
        OMFactory f = OMAbstractFactory.getOMFactory();
        OMElement fault = f.createOMElement("fault", null);
        f.createOMElement("code", null, fault).setText(Integer.toString(rule.errorCode()));
        f.createOMElement("message", null, fault).setText(rule.block() ? "Message blocked" : "Message throttled out");
        f.createOMElement("description", null, fault).setText(rule.reason());
        SOAPBody body = axis2.getEnvelope().getBody();
        while (body.getFirstElement() != null) {
            body.getFirstElement().detach();
        }
        body.addChild(fault);
    }

    private void capture(MessageContext ctx, int status) {
        long now = clock.wallMicros();
        Object start = ctx.getProperty(START_US);
        long t0 = start instanceof Long ? (Long) start : now;
        RequestRecord r = agent.record().apiName(apiName(ctx)).apiVersion(string(ctx.getProperty("SYNAPSE_REST_API_VERSION")))
                .apiContext(string(ctx.getProperty("REST_API_CONTEXT"))).httpStatus(status)
                .eventTimeUs(t0).latencyUs(now - t0);
        String method = string(ctx.getProperty("REST_METHOD")); // set by Synapse's API dispatch
        if (method == null && ctx instanceof Axis2MessageContext) {
            method = string(((Axis2MessageContext) ctx).getAxis2MessageContext().getProperty("HTTP_METHOD"));
        }
        r.httpMethod(HttpMethods.of(method));
        if (ctx.getProperty(REFUSED) != null) {
            r.addFlags(EventFlags.REFUSED_BY_DIRECTIVE);
            Object code = ctx.getProperty("ERROR_CODE");
            r.errorCode(code instanceof Integer ? (Integer) code : 0);
        }
        agent.offer(r);
    }

    private static String apiName(MessageContext ctx) {
        return string(ctx.getProperty("SYNAPSE_REST_API"));
    }

    private static String string(Object o) {
        return o instanceof String && !((String) o).isEmpty() ? (String) o : null;
    }

    /** One agent per JVM, configured like the WSO2 adapter (system properties, env, file). */
    static final class Shared {
        private static VigieAgent agent;
        private static boolean started;

        private Shared() {}

        static synchronized VigieAgent agent() {
            if (!started) {
                started = true;
                AgentSettings s = AgentSettings.fromEnvironment();
                agent = s.enabled ? VigieAgent.builder(s).build() : null;
            }
            return agent;
        }

        static synchronized void close() {
            if (agent != null) {
                agent.close();
                agent = null;
            }
            started = false;
        }
    }
}
