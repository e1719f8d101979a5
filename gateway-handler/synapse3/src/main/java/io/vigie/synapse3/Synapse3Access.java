package io.vigie.synapse3;

import io.vigie.synapse.MessageAccess;
import org.apache.axiom.om.OMAbstractFactory;
import org.apache.axiom.om.OMElement;
import org.apache.axiom.om.OMFactory;
import org.apache.axiom.soap.SOAPBody;
import org.apache.axis2.transport.base.BaseConstants;
import org.apache.synapse.MessageContext;
import org.apache.synapse.core.axis2.Axis2MessageContext;
import org.apache.synapse.core.axis2.Axis2Sender;

/**
 * {@link MessageAccess} over Apache Synapse 3: stateless, one instance. Apache Synapse has no
 * JSON payload API (WSO2's {@code JsonUtil} is a fork addition): {@link #setJsonPayload} puts the
 * JSON text in Axis2's text wrapper element, which Axis2's {@code PlainTextFormatter} writes as
 * is (the axis2.xml maps {@code application/json} to it). The request body needs no discarding:
 * the new envelope replaces it and {@code message.builder.invoked} keeps the unread pipe out.
 */
final class Synapse3Access implements MessageAccess<MessageContext> {
    static final Synapse3Access INSTANCE = new Synapse3Access();

    private Synapse3Access() {}

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
    public void discardRequestBody(MessageContext ctx) {
        // nothing to do: see the class comment
    }

    @Override
    public void setJsonPayload(MessageContext ctx, String json) {
        OMFactory f = OMAbstractFactory.getOMFactory();
        OMElement text = f.createOMElement(BaseConstants.DEFAULT_TEXT_WRAPPER);
        text.setText(json);
        SOAPBody body = ctx.getEnvelope().getBody();
        while (body.getFirstElement() != null) {
            body.getFirstElement().detach();
        }
        body.addChild(text);
    }

    @Override
    public void sendBack(MessageContext ctx) {
        ctx.setResponse(true);
        ctx.setTo(null);
        Axis2Sender.sendBack(ctx);
    }
}
