package io.vigie.gateway.directive;

import io.vigie.gateway.Clock;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveHits;
import io.vigie.wire.v1.DirectiveUpdate;
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
    private final LongAdder refusedUpdates = new LongAdder();
    private volatile Index index = Index.EMPTY;
    /** Directives by id as last received (applied to this gateway's channel or not). */
    private Map<String, Directive> directives = new LinkedHashMap<>();
    private long version;

    /**
     * @param clock time for expiry (wall) and token buckets (monotonic)
     * @param channel this gateway's channel ({@code Hello.channel}); directives naming another
     *     channel never apply here
     */
    public DirectiveTable(Clock clock, String channel) {
        this.clock = clock;
        this.channel = channel == null ? "" : channel;
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

    /** Applies an update from the sidecar atomically (full replacement or delta). */
    public synchronized void apply(DirectiveUpdate update) {
        Map<String, Directive> next = update.getFull() ? new LinkedHashMap<>() : new LinkedHashMap<>(directives);
        for (String id : update.getRemovalsList()) {
            next.remove(id);
        }
        for (Directive d : update.getUpsertsList()) {
            String problem = Rule.problem(d);
            if (problem != null) {
                refusedUpdates.increment();
                LOG.log(Level.WARNING, "vigie: ignoring {0}", problem);
                next.remove(d.getId());
                continue;
            }
            next.put(d.getId(), d);
        }
        Map<String, Directive> previous = directives;
        directives = next;
        version = update.getVersion();
        rebuild(previous);
    }

    /** Drops the directives whose expiry has passed (the request path already ignores them). */
    public synchronized int expire() {
        long nowUs = clock.wallMicros();
        List<String> gone = new ArrayList<>();
        for (Directive d : directives.values()) {
            if (d.getExpiresAtUs() <= nowUs) {
                gone.add(d.getId());
            }
        }
        if (gone.isEmpty()) {
            return 0;
        }
        Map<String, Directive> previous = new LinkedHashMap<>(directives);
        for (String id : gone) {
            directives.remove(id);
        }
        rebuild(previous);
        return gone.size();
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

    /** Upserts refused for being malformed. */
    public long refusedUpdates() {
        return refusedUpdates.sum();
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

    private void rebuild(Map<String, Directive> previous) {
        long nowNanos = clock.monotonicNanos();
        Index old = index;
        List<Rule> rules = new ArrayList<>();
        for (Directive d : directives.values()) {
            if (!d.getChannel().isEmpty() && !d.getChannel().equals(channel)) {
                continue;
            }
            Rule kept = old.byId(d.getId());
            // an unchanged directive keeps its rule, so its token bucket keeps its state
            if (kept != null && d.equals(previous.get(d.getId()))) {
                rules.add(kept);
            } else {
                rules.add(new Rule(d, nowNanos, hits.computeIfAbsent(d.getId(), k -> new Hits())));
            }
        }
        index = new Index(rules);
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
