package io.vigie.synapse;

import io.vigie.gateway.RequestRecord;

/**
 * Who called: the application and subscription of a request, where the runtime knows them
 * (WSO2's authentication context). {@link #NONE} for runtimes without API consumers.
 */
public interface Consumers<C> {
    /** The application's id (WSO2: its UUID), or {@code null}. Never throws. */
    String applicationId(C ctx);

    /**
     * Fills the application and subscription fields of {@code r}; returns the key type
     * (PRODUCTION, SANDBOX) when known, else {@code null}. Never throws.
     */
    String describe(C ctx, RequestRecord r);

    /** No consumer information. */
    static <C> Consumers<C> none() {
        return new Consumers<C>() {
            @Override
            public String applicationId(C ctx) {
                return null;
            }

            @Override
            public String describe(C ctx, RequestRecord r) {
                return null;
            }
        };
    }
}
