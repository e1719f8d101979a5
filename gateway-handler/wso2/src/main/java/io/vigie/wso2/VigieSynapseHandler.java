package io.vigie.wso2;

import static io.vigie.synapse.SynapseNames.*;

import io.vigie.gateway.AgentSettings;
import io.vigie.gateway.Clock;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import io.vigie.synapse.ApiNaming;
import io.vigie.synapse.SynapseCapture;
import io.vigie.synapse.SynapseRefusal;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.synapse.AbstractExtendedSynapseHandler;
import org.apache.synapse.MessageContext;

/**
 * vigie's WSO2 API Manager 4.x global handler. Register it in {@code deployment.toml}:
 * <pre>
 * [synapse_handlers.vigie]
 * enabled = true
 * class = "io.vigie.wso2.VigieSynapseHandler"
 * </pre>
 *
 * <p>Thin on purpose: the shared {@link SynapseCapture} reads what WSO2 already put in the message
 * context (through {@link Wso2Access}; the caller through {@link Wso2Consumers}) and hands it to
 * the gateway-agnostic {@link VigieAgent}. Every method catches everything and hands it to
 * {@link SynapseCapture#failed} (counted, the message goes on as if vigie were absent): nothing
 * escapes into mediation.
 *
 * <ul>
 *   <li>request in-flow: notes the request start time;</li>
 *   <li>request out-flow (after WSO2's authentication and throttling, before the backend call):
 *       consults the directive table; an ENFORCE directive answers as WSO2's own throttling does
 *       ({@link SynapseRefusal}) and stops the request; then notes the backend start time;</li>
 *   <li>response in-flow: notes the backend end time;</li>
 *   <li>response out-flow (successes and faults alike): captures the request and offers it.</li>
 * </ul>
 * Global handlers get no parameters in APIM 4.x: settings come from system properties, the
 * environment or a properties file ({@link AgentSettings}).
 */
public class VigieSynapseHandler extends AbstractExtendedSynapseHandler {
    private static final Logger LOG = Logger.getLogger(VigieSynapseHandler.class.getName());

    /** {@code null} when vigie is disabled or could not start: every method then does nothing. */
    private final SynapseCapture<MessageContext> capture;
    private final SynapseRefusal<MessageContext> refusal;

    /** The constructor Synapse calls (by reflection, no arguments). */
    public VigieSynapseHandler() {
        this(Shared.agent(), Clock.SYSTEM);
    }

    /** For tests and other entry points: a given agent (null = disabled) and clock. */
    public VigieSynapseHandler(VigieAgent agent, Clock clock) {
        this.capture = agent == null ? null
                : new SynapseCapture<>(agent, clock, Wso2Access.INSTANCE, new Wso2Consumers(), ApiNaming.WSO2_APIM);
        // sendBack runs this handler's response out-flow, which captures the refused request
        this.refusal = capture == null ? null : new SynapseRefusal<>(capture, false);
    }

    @Override
    public boolean handleRequestInFlow(MessageContext ctx) {
        if (capture == null) {
            return true;
        }
        try {
            capture.requestStarted(ctx);
        } catch (Throwable t) {
            capture.failed(t);
        }
        return true;
    }

    @Override
    public boolean handleRequestOutFlow(MessageContext ctx) {
        if (capture == null) {
            return true;
        }
        try {
            if (capture.access().property(ctx, CHECKED) == null) { // once per request, whatever the number of sends
                Rule refusing = capture.check(ctx);
                if (refusing != null) {
                    return !refusal.refuse(ctx, refusing);
                }
                capture.backendStarted(ctx);
            }
        } catch (Throwable t) {
            capture.failed(t);
        }
        return true;
    }

    @Override
    public boolean handleResponseInFlow(MessageContext ctx) {
        if (capture == null) {
            return true;
        }
        try {
            capture.backendEnded(ctx);
        } catch (Throwable t) {
            capture.failed(t);
        }
        return true;
    }

    @Override
    public boolean handleResponseOutFlow(MessageContext ctx) {
        if (capture == null) {
            return true;
        }
        try {
            capture.capture(ctx);
        } catch (Throwable t) {
            capture.failed(t);
        }
        return true;
    }

    @Override
    public boolean handleError(MessageContext ctx) {
        return true; // faults reach the client through the fault sequence and handleResponseOutFlow
    }

    @Override
    public boolean handleServerInit() {
        return true;
    }

    /** Never called by APIM 4.x (see the shutdown hook); harmless when it is. */
    @Override
    public boolean handleServerShutDown() {
        try {
            Shared.close();
        } catch (Throwable t) {
            LOG.log(Level.FINE, "vigie: closing at server shutdown", t);
        }
        return true;
    }

    @Override
    public boolean handleArtifactDeployment(String artifactName, String artifactType, String startTime) {
        return true;
    }

    @Override
    public boolean handleArtifactUnDeployment(String artifactName, String artifactType, String unDeployTime) {
        return true;
    }

    /** The one agent of the gateway process, shared by every handler instance Synapse makes. */
    static final class Shared {
        private static VigieAgent agent;
        private static boolean started;

        private Shared() {}

        static synchronized VigieAgent agent() {
            if (!started) {
                started = true;
                try {
                    AgentSettings s = AgentSettings.fromEnvironment();
                    for (String p : s.problems()) {
                        LOG.warning("vigie: " + p);
                    }
                    if (s.enabled) {
                        agent = VigieAgent.builder(s).build();
                        LOG.info("vigie: handler started (" + s + ")");
                    } else {
                        LOG.info("vigie: handler disabled (vigie.enabled=false)");
                    }
                } catch (Throwable t) {
                    LOG.log(Level.SEVERE, "vigie: handler could not start; the gateway runs without it", t);
                    agent = null;
                }
            }
            return agent;
        }

        static synchronized void close() {
            if (agent != null) {
                agent.close();
                agent = null;
            }
        }
    }
}
