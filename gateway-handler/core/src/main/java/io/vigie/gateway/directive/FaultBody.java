package io.vigie.gateway.directive;

/** WSO2's fault body shape, {@code {"fault":{"code":900806,"message":"...","description":"..."}}}. */
public final class FaultBody {
    private FaultBody() {}

    public static String json(int code, String message, String description) {
        StringBuilder sb = new StringBuilder(64 + message.length() + description.length());
        sb.append("{\"fault\":{\"code\":").append(code).append(",\"message\":");
        quote(sb, message);
        sb.append(",\"description\":");
        quote(sb, description);
        return sb.append("}}").toString();
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
