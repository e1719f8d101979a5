package io.vigie.gateway.directive;

/**
 * The refusal body WSO2 APIM 4.0-4.6 sends (its {@code _throttle_out_handler_} sequence): a flat
 * JSON object with the code as a string, {@code {"code":"900806","message":"...","description":"..."}},
 * plus {@code "nextAccessTime"} when known. (The {@code {"fault":{...}}} shape is APIM 3.x's.)
 */
public final class FaultBody {
    private FaultBody() {}

    /** Without {@code nextAccessTime}. */
    public static String json(int code, String message, String description) {
        return json(code, message, description, null);
    }

    /** {@code nextAccessTime} is left out when {@code null}. */
    public static String json(int code, String message, String description, String nextAccessTime) {
        StringBuilder sb = new StringBuilder(80 + message.length() + description.length());
        sb.append("{\"code\":\"").append(code).append("\",\"message\":");
        quote(sb, message);
        sb.append(",\"description\":");
        quote(sb, description);
        if (nextAccessTime != null) {
            sb.append(",\"nextAccessTime\":");
            quote(sb, nextAccessTime);
        }
        return sb.append('}').toString();
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
