package io.vigie.wso2;

import io.vigie.synapse.MessageAccess;
import org.apache.synapse.MessageContext;
import org.apache.synapse.commons.json.JsonUtil;
import org.apache.synapse.core.axis2.Axis2MessageContext;
import org.apache.synapse.core.axis2.Axis2Sender;
import org.apache.synapse.transport.passthru.util.RelayUtils;

/** {@link MessageAccess} over WSO2's Synapse fork (APIM 4.x): stateless, one instance. */
final class Wso2Access implements MessageAccess<MessageContext> {
    static final Wso2Access INSTANCE = new Wso2Access();

    private Wso2Access() {}

    private static org.apache.axis2.context.MessageContext axis2(MessageContext ctx) {
        return ctx instanceof Axis2MessageContext ? ((Axis2MessageContext) ctx).getAxis2MessageContext() : null;
    }

    @Override
    public Object property(MessageContext ctx, String name) {
        return ctx.getProperty(name);
    }

    @Override
    public void setProperty(MessageContext ctx, String name, Object value) {
        ctx.setProperty(name, value);
    }

    @Override
    public Object axis2Property(MessageContext ctx, String name) {
        org.apache.axis2.context.MessageContext a = axis2(ctx);
        return a == null ? null : a.getProperty(name);
    }

    @Override
    public boolean canRespond(MessageContext ctx) {
        return axis2(ctx) != null;
    }

    @Override
    public void setAxis2Property(MessageContext ctx, String name, Object value) {
        axis2(ctx).setProperty(name, value);
    }

    @Override
    public void removeAxis2Property(MessageContext ctx, String name) {
        axis2(ctx).removeProperty(name);
    }

    @Override
    public void discardRequestBody(MessageContext ctx) throws Exception {
        RelayUtils.discardRequestMessage(axis2(ctx));
    }

    @Override
    public void setJsonPayload(MessageContext ctx, String json) throws Exception {
        JsonUtil.getNewJsonPayload(axis2(ctx), json, true, true);
    }

    @Override
    public void sendBack(MessageContext ctx) {
        ctx.setResponse(true);
        ctx.setTo(null);
        Axis2Sender.sendBack(ctx);
    }
}
