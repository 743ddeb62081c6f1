# Emulates the mma.sync flash attention kernel (src/ops/cuda/flash_attention.cu) one warp at a time
# with numpy, per the PTX fragment layouts of ldmatrix and mma.m16n8k16 (ops/cuda/mma.cuh), against
# direct attention: a check of the kernel's index arithmetic that runs without a GPU (python3-numpy).
# Not part of the build or the tests.
import numpy as np
rng = np.random.default_rng(0)
D, KEYS, ROWS = 128, 64, 64
def lanes(): return range(32)
def ldmatrix(mem, addrs, trans=False):
    # addrs[lane] = (row, col) start in mem of 8 consecutive elements; matrix m rows from lanes 8m..8m+7
    out = [[None]*4 for _ in lanes()]
    for m in range(4):
        M = np.array([mem[addrs[8*m + r][0], addrs[8*m + r][1]:addrs[8*m + r][1]+8] for r in range(8)])
        if trans: M = M.T
        for L in lanes():
            g, t = L // 4, L % 4
            out[L][m] = (M[g, 2*t], M[g, 2*t+1])
    return out
def mma(dfr, afr, b0, b1):
    A = np.zeros((16,16)); B = np.zeros((16,8))
    for L in lanes():
        g, t = L // 4, L % 4
        A[g, 2*t:2*t+2] = afr[L][0]; A[g+8, 2*t:2*t+2] = afr[L][1]
        A[g, 2*t+8:2*t+10] = afr[L][2]; A[g+8, 2*t+8:2*t+10] = afr[L][3]
        B[2*t:2*t+2, g] = b0[L]; B[2*t+8:2*t+10, g] = b1[L]
    C = np.zeros((16,8))
    for L in lanes():
        g, t = L // 4, L % 4
        C[g, 2*t:2*t+2] = dfr[L][0:2]; C[g+8, 2*t:2*t+2] = dfr[L][2:4]
    Dm = A @ B + C
    for L in lanes():
        g, t = L // 4, L % 4
        dfr[L][0:2] = Dm[g, 2*t:2*t+2]; dfr[L][2:4] = Dm[g+8, 2*t:2*t+2]

def run(first_position, n_rows, n_keys_total, split_begin, split_end, window=0):
    q = rng.standard_normal((ROWS, D)); k = rng.standard_normal((n_keys_total, D)); v = rng.standard_normal((n_keys_total, D))
    q[n_rows:] = 0
    scale = D ** -0.5
    kD, kO, kS = D // 16, D // 8, KEYS // 8
    results = np.zeros((ROWS, D)); maxes = np.zeros(ROWS); sums = np.zeros(ROWS)
    for warp in range(4):
        qf = []
        for d in range(kD):
            addrs = [(warp*16 + (L % 8) + 8*((L//8) % 2), d*16 + 8*((L//8)//2)) for L in lanes()]
            qf.append(ldmatrix(q, addrs))
        o = [[np.zeros(4) for _ in range(kO)] for _ in lanes()]
        rmax = [[-np.inf, -np.inf] for _ in lanes()]; rsum = [[0.0, 0.0] for _ in lanes()]
        for ts in range(split_begin, split_end + 1, KEYS):
            K = np.zeros((KEYS, D)); V = np.zeros((KEYS, D))
            for key in range(KEYS):
                if ts + key <= split_end: K[key] = k[ts+key]; V[key] = v[ts+key]
            s = [[np.zeros(4) for _ in range(kS)] for _ in lanes()]
            for j in range(kS):
                for d in range(0, kD, 2):
                    b = ldmatrix(K, [(8*j + L % 8, d*16 + 8*(L//8)) for L in lanes()])
                    sj = [s[L][j] for L in lanes()]
                    mma(sj, [qf[d][L] for L in lanes()], [b[L][0] for L in lanes()], [b[L][1] for L in lanes()])
                    mma(sj, [qf[d+1][L] for L in lanes()], [b[L][2] for L in lanes()], [b[L][3] for L in lanes()])
            wp = first_position + warp*16
            unmasked = ts + KEYS - 1 <= min(wp, split_end) and (window <= 0 or ts > wp + 15 - window)
            tmax = [[-np.inf, -np.inf] for _ in lanes()]
            for L in lanes():
                g, t = L // 4, L % 4
                pos = [first_position + warp*16 + g, first_position + warp*16 + g + 8]
                for j in range(kS):
                    for e in range(4):
                        key = ts + 8*j + 2*t + (e & 1); P = pos[e // 2]
                        vis = key <= P and key <= split_end and (window <= 0 or key > P - window)
                        assert vis or not unmasked, (warp, ts, key, P)
                        vis = unmasked or vis
                        s[L][j][e] = s[L][j][e] * scale if vis else -np.inf
                        tmax[L][e//2] = max(tmax[L][e//2], s[L][j][e])
            base = [[0, 0] for _ in lanes()]; corr = [[0, 0] for _ in lanes()]
            for L in lanes():
                for h in range(2):
                    quad = [tmax[(L & ~3) | x][h] for x in range(4)]
                    nm = max(rmax[L][h], max(quad))
                    base[L][h] = 0.0 if nm == -np.inf else nm
                    corr[L][h] = np.exp(rmax[L][h] - base[L][h])
                    rmax[L][h] = nm; rsum[L][h] *= corr[L][h]
                for n in range(kO):
                    for e in range(4): o[L][n][e] *= corr[L][e//2]
            for kk in range(kS // 2):
                a = []
                for L in lanes():
                    w = [np.exp(s[L][2*kk + e//4][e % 4] - base[L][(e % 4)//2]) for e in range(8)]
                    for e in range(8): rsum[L][(e % 4)//2] += w[e]
                    w = [float(np.float32(x)) for x in w]
                    a.append(((w[0], w[1]), (w[2], w[3]), (w[4], w[5]), (w[6], w[7])))
                for n in range(0, kO, 2):
                    b = ldmatrix(V, [(16*kk + (L % 8) + 8*((L//8) % 2), n*8 + 8*((L//8)//2)) for L in lanes()], trans=True)
                    on = [o[L][n] for L in lanes()]; on1 = [o[L][n+1] for L in lanes()]
                    mma(on, a, [b[L][0] for L in lanes()], [b[L][1] for L in lanes()])
                    mma(on1, a, [b[L][2] for L in lanes()], [b[L][3] for L in lanes()])
        for L in lanes():
            g, t = L // 4, L % 4
            for h in range(2):
                tot = sum(rsum[(L & ~3) | x][h] for x in range(4))
                row = warp*16 + g + 8*h
                maxes[row] = rmax[L][h]; sums[row] = tot
                for n in range(kO):
                    results[row, 8*n + 2*t] = o[L][n][2*h]; results[row, 8*n + 2*t + 1] = o[L][n][2*h+1]
    # reference over this split's keys
    err = 0
    for row in range(n_rows):
        P = first_position + row
        keys = [kk for kk in range(split_begin, split_end + 1) if kk <= P and (window <= 0 or kk > P - window)]
        if not keys:
            assert maxes[row] == -np.inf and sums[row] == 0, row; continue
        sc = np.array([q[row] @ k[kk] * scale for kk in keys]); m = sc.max(); w = np.exp(sc - m)
        assert abs(maxes[row] - m) < 1e-9, (row, maxes[row], m)
        assert abs(sums[row] - w.sum()) < 1e-9 * w.sum()
        ref = (w[:, None] * v[keys]).sum(0)
        err = max(err, np.abs(results[row] - ref).max() / np.abs(ref).max())
    return err
print(run(first_position=37, n_rows=64, n_keys_total=101, split_begin=0, split_end=100))
print(run(first_position=0, n_rows=50, n_keys_total=50, split_begin=0, split_end=49))
print(run(first_position=100, n_rows=40, n_keys_total=140, split_begin=64, split_end=127, window=48))
print(run(first_position=300, n_rows=64, n_keys_total=364, split_begin=0, split_end=363, window=200))
D = 64
print(run(first_position=130, n_rows=64, n_keys_total=194, split_begin=64, split_end=193))
