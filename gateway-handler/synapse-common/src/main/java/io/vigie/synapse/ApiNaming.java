package io.vigie.synapse;

/**
 * Which message property names the API a request belongs to. WSO2 APIM sets {@code api.ut.api}
 * only once it has authenticated the request (without it, {@link SynapseCapture#capture} falls
 * back to what Synapse's REST dispatch set); Apache Synapse only has the REST API's own name.
 */
public enum ApiNaming {
    /** WSO2 API Manager 4.x: {@code api.ut.api} and {@code api.ut.version}. */
    WSO2_APIM(SynapseNames.API_NAME, SynapseNames.API_VERSION),
    /** Apache Synapse: {@code SYNAPSE_REST_API}; directives scope by API name only. */
    APACHE_SYNAPSE(SynapseNames.REST_API_NAME, null);

    final String apiNameProperty;
    /** The version directives are scoped by; {@code null} = directives ignore the version. */
    final String apiVersionProperty;

    ApiNaming(String apiNameProperty, String apiVersionProperty) {
        this.apiNameProperty = apiNameProperty;
        this.apiVersionProperty = apiVersionProperty;
    }
}
