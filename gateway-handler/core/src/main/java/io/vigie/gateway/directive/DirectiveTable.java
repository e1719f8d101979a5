package io.vigie.gateway.directive;

import io.vigie.gateway.Clock;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveHits;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.LocalQuota;
import io.vigie.wire.v1.RejectedDirective;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The directives of this gateway, fed by the sidecar's stream and consulted on the request path.
 *
 * <p>{@link #check} is O(1) in the number of directives and allocation-free: directives are
 * indexed by their scope (application, API, API version) in an open-addressing table built at
 * each update; a request probes at most one slot per scope shape in use (at most six). Updates
 * build a new index and publish it with one volatile write (copy-on-write), so the request path
 * takes no lock. A SHADOW directive counts what it would refuse; an ENFORCE directive refuses.
 * Every directive carries a wall-clock expiry and stops applying when it passes, whether or not
 * the sidecar is reachable.
 *
 * <p>An update is validated directive by directive: an upsert that is malformed or outside
 * {@link DirectiveLimits} is rejected by itself (counted, logged, kept in {@link #rejections()}
 * for the sidecar) and the rest of the update applies. The new table and its index are built in
 * full before anything is published, so a directive that cannot be built never leaves the table
 * half-updated, and later updates (a removal above all) always apply.
 *
 * <p>A LIMIT is a fleet-wide budget: each sidecar sends this gateway its {@link LocalQuota} of
 * each LIMIT (its share of the budget, re-balanced every few seconds). Per directive id the quota
 * of the highest epoch wins, the smallest share on a tie (whichever sidecars sent them); the
 * LIMIT's bucket then holds that share, and a new share keeps the tokens already taken (see
 * {@link TokenBucket#retune}). A LIMIT without a quota holds its whole budget. A quota that is
 * malformed is rejected by itself and counted ({@link #rejectedQuotas()}); the rest applies.
 */
public final class DirectiveTable {
    private static final Logger LOG = Logger.getLogger(DirectiveTable.class.getName());

    /** Cumulative hits of one directive id, kept across updates of that directive. */
    static final class Hits {
        final LongAdder shadow = new LongAdder();
        final LongAdder enforced = new LongAdder();
        final LongAdder passed = new LongAdder();
    }

    private final Clock clock;
    private final String channel;
    private final Map<String, Hits> hits = new ConcurrentHashMap<>();
    private final LongAdder rejected;
    private final LongAdder rejectedQuotas = new LongAdder();
    /** The latest local quota refused ("id: reason", cut), reported to the sidecars; "" when none. */
    private volatile String lastQuotaRejection = "";
    private static final int MAX_REJECTION_CHARS = 256;
    /** The latest rejection per directive id, oldest first, at most {@link DirectiveLimits#MAX_REPORTED_REJECTIONS}. */
    private final LinkedHashMap<String, RejectedDirective> rejections = new LinkedHashMap<>();
    /** Which sidecar sent each rejected upsert (a full update of that sidecar clears its own). */
    private final Map<String, Integer> rejectionSources = new java.util.HashMap<>();
    /** Per sidecar (by target number), what it said; merged into {@link #directives}. */
    private final List<Source> sources = new ArrayList<>();
    private volatile Index index = Index.EMPTY;
    /** Directives in force by id, merged from every sidecar (applied to this gateway's channel or not). */
    private Map<String, Directive> directives = new LinkedHashMap<>();
    private long version;

    /**
     * @param clock time for expiry (wall) and token buckets (monotonic)
     * @param channel this gateway's channel ({@code Hello.channel}); directives naming another
     *     channel never apply here
     */
    public DirectiveTable(Clock clock, String channel) {
        this(clock, channel, new LongAdder());
    }

    /** As above, counting rejected upserts into {@code rejected} (the agent's counters). */
    public DirectiveTable(Clock clock, String channel, LongAdder rejected) {
        this.clock = clock;
        this.channel = channel == null ? "" : channel;
        this.rejected = rejected;
    }

    /**
     * The directive that refuses this request in ENFORCE mode, or {@code null} to let it through.
     * Counts the hits of every matching directive (shadow refusals, enforced refusals, passes).
     * Never allocates, never blocks, never throws for any input (nulls are "absent").
     */
    public Rule check(String applicationId, String apiName, String apiVersion) {
        Index ix = index;
        if (ix.size == 0) {
            return null;
        }
        long nowUs = clock.wallMicros();
        long nowNanos = 0;
        boolean haveNanos = false;
        Rule refusal = null;
        int shapes = ix.shapes;
        while (shapes != 0) {
            int shape = Integer.numberOfTrailingZeros(shapes);
            shapes &= shapes - 1;
            String app = (shape & Index.APP) != 0 ? applicationId : null;
            String api = (shape & Index.API) != 0 ? apiName : null;
            String ver = (shape & Index.VERSION) != 0 ? apiVersion : null;
            if (((shape & Index.APP) != 0 && app == null) || ((shape & Index.API) != 0 && api == null)
                    || ((shape & Index.VERSION) != 0 && ver == null)) {
                continue; // the request lacks a field this shape needs
            }
            Rule[] rules = ix.find(shape, app, api, ver);
            if (rules == null) {
                continue;
            }
            for (Rule r : rules) {
                if (r.expiresAtUs <= nowUs) {
                    continue;
                }
                if (r.enforce && refusal != null) {
                    continue; // already refused: do not take tokens from other buckets
                }
                boolean over;
                if (r.block) {
                    over = true;
                } else {
                    if (!haveNanos) {
                        nowNanos = clock.monotonicNanos();
                        haveNanos = true;
                    }
                    over = !r.bucket.tryAcquire(nowNanos);
                }
                if (!over) {
                    r.hits.passed.increment();
                } else if (r.enforce) {
                    r.hits.enforced.increment();
                    refusal = r;
                } else {
                    r.hits.shadow.increment();
                }
            }
        }
        return refusal;
    }

    /** Applies an update from the only sidecar (source 0); see {@link #apply(int, DirectiveUpdate)}. */
    public void apply(DirectiveUpdate update) {
        apply(0, update);
    }

    /**
     * Applies an update from sidecar {@code source} (its number among this gateway's targets):
     * full replacement of that sidecar's table or delta, all at once. Upserts that cannot be
     * used are rejected one by one (see the class comment); the rest applies. Then the tables of
     * all sidecars are merged (see {@link Source}) and published. Never throws for any update.
     */
    public synchronized void apply(int source, DirectiveUpdate update) {
        long version = update.getVersion();
        Source from = source(source);
        if (update.getFull()) {
            from.upserts.clear();
            rejections.values().removeIf(r -> Integer.valueOf(source).equals(rejectionSources.get(r.getDirectiveId())));
            rejectionSources.values().removeIf(v -> v == source);
        }
        if (update.getFull()) {
            java.util.Set<String> kept = new java.util.HashSet<>();
            for (Directive d : update.getUpsertsList()) {
                kept.add(d.getId());
            }
            from.quotas.keySet().retainAll(kept);
        }
        for (String id : update.getRemovalsList()) {
            from.remove(id, version);
            from.quotas.remove(id);
            rejections.remove(id);
            rejectionSources.remove(id);
        }
        for (Directive d : update.getUpsertsList()) {
            long v = d.getVersion() != 0 ? d.getVersion() : version;
            String problem = Rule.problem(d);
            if (problem != null) {
                reject(d.getId(), version, problem);
                rejectionSources.put(d.getId(), source);
                from.remove(d.getId(), v); // the id's older version must not outlive a rejected replacement
                continue;
            }
            from.put(d, v);
            rejections.remove(d.getId());
            rejectionSources.remove(d.getId());
        }
        for (LocalQuota q : update.getQuotasList()) {
            String problem = Rule.quotaProblem(q);
            if (problem != null) {
                rejectedQuotas.increment();
                String line = q.getDirectiveId() + ": " + problem;
                lastQuotaRejection = line.length() > MAX_REJECTION_CHARS ? line.substring(0, MAX_REJECTION_CHARS) : line;
                LOG.log(Level.WARNING, "vigie: rejecting local quota {0} of update {1}: {2}",
                        new Object[] {q.getDirectiveId(), version, problem});
                continue;
            }
            LocalQuota had = from.quotas.get(q.getDirectiveId());
            if (had == null || q.getEpochUs() >= had.getEpochUs()) { // a sidecar's own order: latest epoch
                from.quotas.remove(q.getDirectiveId());
                from.quotas.put(q.getDirectiveId(), q);
            }
            while (from.quotas.size() > DirectiveLimits.MAX_QUOTAS) {
                from.quotas.remove(from.quotas.keySet().iterator().next());
            }
        }
        publish(merged(), version);
    }

    /** Drops the directives whose expiry has passed (the request path already ignores them). */
    public synchronized int expire() {
        long nowUs = clock.wallMicros();
        int gone = 0;
        for (Directive d : directives.values()) {
            if (d.getExpiresAtUs() <= nowUs) {
                gone++;
            }
        }
        for (Source src : sources) {
            if (src != null) {
                src.upserts.values().removeIf(e -> e.directive.getExpiresAtUs() <= nowUs);
            }
        }
        if (gone > 0) {
            publish(merged(), version);
        }
        return gone;
    }

    private Source source(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("source " + n);
        }
        while (sources.size() <= n) {
            sources.add(null);
        }
        Source s = sources.get(n);
        if (s == null) {
            s = new Source();
            sources.set(n, s);
        }
        return s;
    }

    /**
     * The table in force: per id, the entry of highest version among the sidecars' (a removal
     * wins a tie; between two upserts of one version, the lower-numbered sidecar's); ids whose
     * winner is a removal are absent.
     */
    private Map<String, Directive> merged() {
        if (sources.size() == 1) {
            Map<String, Directive> only = new LinkedHashMap<>();
            for (Source.Entry e : sources.get(0).upserts.values()) {
                only.put(e.directive.getId(), e.directive);
            }
            return only;
        }
        Map<String, Source.Entry> best = new LinkedHashMap<>();
        for (Source src : sources) {
            if (src == null) {
                continue;
            }
            for (Source.Entry e : src.upserts.values()) {
                Source.Entry b = best.get(e.directive.getId());
                if (b == null || e.version > b.version) {
                    best.put(e.directive.getId(), e);
                }
            }
        }
        Map<String, Directive> out = new LinkedHashMap<>();
        for (Source.Entry e : best.values()) {
            String id = e.directive.getId();
            boolean removed = false;
            for (Source src : sources) {
                Long r = src == null ? null : src.removals.get(id);
                if (r != null && r >= e.version) {
                    removed = true;
                    break;
                }
            }
            if (!removed) {
                out.put(id, e.directive);
            }
        }
        return out;
    }

    /**
     * What one sidecar said: its upserts in force and its removals, each with its version (the
     * directive's own {@code version}, else its update's). A sidecar's own statements apply in
     * the order it sent them; versions only decide between sidecars. Removals are remembered so
     * that a sidecar that has not yet heard of one (its replication lags) cannot bring the
     * directive back; the oldest are forgotten past {@link DirectiveLimits#MAX_REMEMBERED_REMOVALS}.
     */
    static final class Source {
        static final class Entry {
            final Directive directive;
            final long version;

            Entry(Directive directive, long version) {
                this.directive = directive;
                this.version = version;
            }
        }

        final Map<String, Entry> upserts = new LinkedHashMap<>();
        final LinkedHashMap<String, Long> removals = new LinkedHashMap<>();
        /** This sidecar's latest local quota per directive id (oldest first, bounded). */
        final LinkedHashMap<String, LocalQuota> quotas = new LinkedHashMap<>();

        void put(Directive d, long version) {
            upserts.put(d.getId(), new Entry(d, version));
            removals.remove(d.getId());
        }

        void remove(String id, long version) {
            upserts.remove(id);
            removals.remove(id);
            removals.put(id, version);
            while (removals.size() > DirectiveLimits.MAX_REMEMBERED_REMOVALS) {
                removals.remove(removals.keySet().iterator().next());
            }
        }
    }

    /**
     * This gateway's share of directive {@code id}'s budget, in millionths: among the sidecars'
     * quotas for it, the one of the highest epoch, the smallest share on a tie; {@link
     * TokenBucket#WHOLE} when none sent one.
     */
    private long shareOf(String id) {
        LocalQuota best = null;
        for (Source src : sources) {
            LocalQuota q = src == null ? null : src.quotas.get(id);
            if (q == null) {
                continue;
            }
            if (best == null || q.getEpochUs() > best.getEpochUs()
                    || (q.getEpochUs() == best.getEpochUs()
                            && Integer.toUnsignedLong(q.getSharePpm()) < Integer.toUnsignedLong(best.getSharePpm()))) {
                best = q;
            }
        }
        return best == null ? TokenBucket.WHOLE : Integer.toUnsignedLong(best.getSharePpm());
    }

    /**
     * Builds every rule of {@code next} and its index, then publishes them: the directives map,
     * the version and (one volatile write) the index. A directive whose rule cannot be built is
     * rejected by itself; nothing is replaced before all the rest is built.
     */
    private void publish(Map<String, Directive> next, long nextVersion) {
        long nowNanos = clock.monotonicNanos();
        Index old = index;
        Map<String, Directive> previous = directives;
        List<Rule> rules = new ArrayList<>(next.size());
        List<String> failed = null;
        for (Directive d : next.values()) {
            if (!d.getChannel().isEmpty() && !d.getChannel().equals(channel)) {
                continue;
            }
            Rule kept = old.byId(d.getId());
            long share = shareOf(d.getId());
            // an unchanged directive keeps its rule, so its token bucket keeps its state (and the
            // tokens it gave out when its share moves)
            if (kept != null && d.equals(previous.get(d.getId()))) {
                kept.retune(share, nowNanos);
                rules.add(kept);
                continue;
            }
            try {
                rules.add(new Rule(d, share, nowNanos, hits.computeIfAbsent(d.getId(), k -> new Hits())));
            } catch (RuntimeException e) {
                // problem() admits only what Rule can build; should that ever differ, this
                // directive alone is rejected
                reject(d.getId(), nextVersion, "cannot be applied: " + e);
                if (failed == null) {
                    failed = new ArrayList<>();
                }
                failed.add(d.getId());
            }
        }
        if (failed != null) {
            for (String id : failed) {
                next.remove(id);
            }
        }
        Index built = new Index(rules);
        directives = next;
        version = nextVersion;
        index = built;
    }

    private void reject(String id, long updateVersion, String reason) {
        rejected.increment();
        LOG.log(Level.WARNING, "vigie: rejecting directive {0} of update {1}: {2}",
                new Object[] {id, updateVersion, reason});
        rejections.remove(id);
        rejections.put(id, RejectedDirective.newBuilder().setDirectiveId(id).setUpdateVersion(updateVersion)
                .setReason(reason).build());
        while (rejections.size() > DirectiveLimits.MAX_REPORTED_REJECTIONS) {
            rejections.remove(rejections.keySet().iterator().next());
        }
    }

    /** The upserts currently rejected: the latest rejection per id, oldest first. */
    public synchronized List<RejectedDirective> rejections() {
        return new ArrayList<>(rejections.values());
    }

    /** Upserts rejected since this table was made (malformed, or outside {@link DirectiveLimits}). */
    public long rejectedDirectives() {
        return rejected.sum();
    }

    /** Local quotas rejected since this table was made (malformed share or epoch). */
    public long rejectedQuotas() {
        return rejectedQuotas.sum();
    }

    /** The latest local quota rejected: "directive id: reason" (at most 256 characters), or "". */
    public String lastQuotaRejection() {
        return lastQuotaRejection;
    }

    /**
     * The share of directive {@code id}'s budget its bucket holds here, in millionths ({@link
     * TokenBucket#WHOLE} without a quota), or {@code -1} when no LIMIT of that id applies here.
     */
    public long sharePpm(String id) {
        Rule r = index.byId(id);
        return r == null || r.block ? -1 : r.sharePpm();
    }

    /** Directives that apply to this gateway and have not expired. */
    public int activeCount() {
        long nowUs = clock.wallMicros();
        int n = 0;
        for (Rule r : index.rules) {
            if (r.expiresAtUs > nowUs) {
                n++;
            }
        }
        return n;
    }

    /** Version of the last update applied. */
    public synchronized long version() {
        return version;
    }

    /** Hits per directive id since the handler started. */
    public List<DirectiveHits> hits() {
        List<DirectiveHits> out = new ArrayList<>(hits.size());
        for (Map.Entry<String, Hits> e : hits.entrySet()) {
            Hits h = e.getValue();
            out.add(DirectiveHits.newBuilder().setDirectiveId(e.getKey()).setShadowHits(h.shadow.sum())
                    .setEnforcedHits(h.enforced.sum()).setPassed(h.passed.sum()).build());
        }
        out.sort((a, b) -> a.getDirectiveId().compareTo(b.getDirectiveId()));
        return out;
    }

    /** Open-addressing index of rules by scope. Immutable once built. */
    static final class Index {
        static final int APP = 1;
        static final int API = 2;
        static final int VERSION = 4;
        static final Index EMPTY = new Index(new ArrayList<>());

        final Rule[] rules;
        final int size;
        final int shapes;
        private final int mask;
        private final int[] keyShape;
        private final String[] keyApp;
        private final String[] keyApi;
        private final String[] keyVersion;
        private final Rule[][] slots;

        Index(List<Rule> list) {
            this.rules = list.toArray(new Rule[0]);
            this.size = rules.length;
            Map<List<Object>, List<Rule>> groups = new LinkedHashMap<>();
            int sh = 0;
            for (Rule r : rules) {
                int shape = shapeOf(r);
                sh |= 1 << shape;
                groups.computeIfAbsent(java.util.Arrays.asList(shape, r.applicationId, r.apiName, r.apiVersion),
                        k -> new ArrayList<>()).add(r);
            }
            this.shapes = sh;
            int cap = Integer.highestOneBit(Math.max(4, groups.size() * 2) - 1) << 1;
            this.mask = cap - 1;
            this.keyShape = new int[cap];
            java.util.Arrays.fill(keyShape, -1);
            this.keyApp = new String[cap];
            this.keyApi = new String[cap];
            this.keyVersion = new String[cap];
            this.slots = new Rule[cap][];
            for (Map.Entry<List<Object>, List<Rule>> e : groups.entrySet()) {
                Rule first = e.getValue().get(0);
                int shape = (Integer) e.getKey().get(0);
                int i = hash(shape, first.applicationId, first.apiName, first.apiVersion) & mask;
                while (keyShape[i] != -1) {
                    i = (i + 1) & mask;
                }
                keyShape[i] = shape;
                keyApp[i] = first.applicationId;
                keyApi[i] = first.apiName;
                keyVersion[i] = first.apiVersion;
                slots[i] = e.getValue().toArray(new Rule[0]);
            }
        }

        Rule[] find(int shape, String app, String api, String ver) {
            int i = hash(shape, app, api, ver) & mask;
            while (true) {
                int s = keyShape[i];
                if (s == -1) {
                    return null;
                }
                if (s == shape && Objects.equals(keyApp[i], app) && Objects.equals(keyApi[i], api)
                        && Objects.equals(keyVersion[i], ver)) {
                    return slots[i];
                }
                i = (i + 1) & mask;
            }
        }

        Rule byId(String id) {
            for (Rule r : rules) {
                if (r.id.equals(id)) {
                    return r;
                }
            }
            return null;
        }

        static int shapeOf(Rule r) {
            return (r.applicationId != null ? APP : 0) | (r.apiName != null ? API : 0)
                    | (r.apiVersion != null ? VERSION : 0);
        }

        static int hash(int shape, String app, String api, String ver) {
            int h = shape;
            h = h * 31 + (app == null ? 0 : app.hashCode());
            h = h * 31 + (api == null ? 0 : api.hashCode());
            h = h * 31 + (ver == null ? 0 : ver.hashCode());
            return h ^ (h >>> 16);
        }
    }
}
