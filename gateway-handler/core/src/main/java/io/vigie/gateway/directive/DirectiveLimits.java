package io.vigie.gateway.directive;

/**
 * The ranges a directive's numbers must lie in for the gateway to apply it, in one place. They
 * are chosen so that the token bucket's arithmetic cannot overflow (nanosecond {@code long}s,
 * compared by difference): an upsert outside them is rejected by itself, counted and reported to
 * the sidecar, and the rest of its update applies. The proto's {@code uint32} fields are read as
 * unsigned.
 */
public final class DirectiveLimits {
    private DirectiveLimits() {}

    /** {@code limit_requests}: any uint32 but 0 (the interval between tokens is then at least 1 ns). */
    public static final long MIN_LIMIT_REQUESTS = 1;
    public static final long MAX_LIMIT_REQUESTS = 0xFFFF_FFFFL;

    /**
     * {@code limit_period_seconds}: 1 s to 10 Julian years (315,576,000 s). Longer periods are
     * no throttling anyone means, and they keep the interval between tokens far below
     * {@link #MAX_TOLERANCE_NANOS}.
     */
    public static final long MIN_LIMIT_PERIOD_SECONDS = 1;
    public static final long MAX_LIMIT_PERIOD_SECONDS = 315_576_000L;

    /** {@code limit_burst}: any uint32 (0 = {@code limit_requests}). */
    public static final long MAX_LIMIT_BURST = 0xFFFF_FFFFL;

    /**
     * The bucket's tolerance ({@code interval × (burst − 1)}) saturates here, 2^62 ns (about 146
     * years of credit): a bucket that would hold more lets this much through at once. Together
     * with an interval of at most 10 years it keeps every difference the bucket compares below
     * 2^63.
     */
    public static final long MAX_TOLERANCE_NANOS = 1L << 62;

    /**
     * The longest interval between two tokens, 2^60 ns (about 36 years): a bucket holding a tiny
     * share of a slow limit lets one request through this often at least. With
     * {@link #MAX_TOLERANCE_NANOS} it keeps every time the bucket holds below 2^63 ns ahead.
     */
    public static final long MAX_INTERVAL_NANOS = 1L << 60;

    /** {@code LocalQuota.share_ppm}: 1 .. 1,000,000 millionths of the directive's budget. */
    public static final long MIN_SHARE_PPM = 1;
    public static final long MAX_SHARE_PPM = 1_000_000L;

    /** Local quotas kept per sidecar (one per LIMIT directive; a quota for an unknown id waits for its directive). */
    public static final int MAX_QUOTAS = 4_096;

    /** Upserts kept in the list of rejected directives reported to the sidecar (the latest per id). */
    public static final int MAX_REPORTED_REJECTIONS = 256;

    /**
     * Removals remembered per sidecar, so that another sidecar's older copy of a removed
     * directive cannot bring it back (the oldest are forgotten first; every directive expires by
     * itself anyway).
     */
    public static final int MAX_REMEMBERED_REMOVALS = 4_096;
}
