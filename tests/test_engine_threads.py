"""Issue 13: the engine's image threads (`n2d2x.engine.forward` cuts a large batch in parts run side by side) give the
outputs of the uncut batch, to the bit, on N2D2's own networks, for any number of threads.

The reference is the same engine on one thread (the batch uncut), which is how the engine computed before it had
threads; every output of every cell is compared, not only the targets, on random fillers and
random stimuli. LeNet (its Fc layers are the cells whose rounding depends on the batch, run uncut) at batch 256, the
224x224 and 160x160 networks at batches of 3 to 10 (2 and 3 threads: parts of one to five images, and odd cuts)."""
import numpy as np
import pytest

from n2d2x import engine
from n2d2x.network import Network, model_path
from n2d2x.weights import fill

CASES = [('LeNet.ini', 256), ('n2d2/SqueezeNet_v1.1.ini', 10), ('n2d2/MobileNet_v2.ini', 9), ('n2d2/ResNet-18.ini', 3),
         ('n2d2/ResNet-50-BN.ini', 3)]


@pytest.mark.parametrize('ini,batch', CASES, ids=[c[0] for c in CASES])
def test_threads_give_the_uncut_outputs(ini, batch):
    net = fill(Network.from_ini(model_path(ini)), seed=1)
    x = np.random.default_rng(0).random((batch, *net.input_dims), dtype=np.float32)
    assert [engine.image_parts(x, n) for n in (1, 2, 3)] == [1, 2, 3]
    cut = {n: engine.forward(net, x, threads=n) for n in (2, 3)}
    whole = engine.forward(net, x, threads=1)
    for n, out in cut.items():
        assert list(out) == list(whole)
        differ = [k for k in whole if not np.array_equal(out[k], whole[k])]
        assert not differ, f"{n} threads: {differ[:5]} differ from the uncut batch"


def test_each_sees_whole_batches():
    assert engine.image_parts(np.zeros((80, 1, 32, 32), np.float32), 2) == 2
    net = fill(Network.from_ini(model_path('LeNet.ini')), seed=1)
    x = np.random.default_rng(0).random((80, *net.input_dims), dtype=np.float32)
    seen = {}
    engine.forward(net, x, [], each=lambda k, y: seen.__setitem__(k, y.copy()), threads=2)
    whole = engine.forward(net, x, threads=1)
    assert list(seen) == list(whole)
    assert all(seen[k].shape[0] == 80 and np.array_equal(seen[k], whole[k]) for k in whole)


TRAIN = [('LeNet.ini', 256), ('MobileNet_Fashion.ini', 100), ('n2d2/SqueezeNet_v1.1.ini', 3)]


def _train_step(net, x, labels, threads):
    tape = engine.forward_train(net, x, np.random.default_rng(2), threads=threads)
    t = net.targets[0].cell
    y = tape[t].reshape(len(x), -1)
    g = y.copy(); g[np.arange(len(x)), labels] -= 1
    return tape, engine.backward(net, tape, {t: (g / len(x)).reshape(tape[t].shape)}, need_input_grad=True, threads=threads)


@pytest.mark.parametrize('ini,batch', TRAIN, ids=[c[0] for c in TRAIN])
def test_training_threads_give_the_uncut_tape_and_gradients(ini, batch):
    "forward_train + backward (a cross-entropy step) in image threads: every output, saved array and gradient as uncut."
    net = fill(Network.from_ini(model_path(ini)), seed=1)
    x = np.random.default_rng(0).random((batch, *net.input_dims), dtype=np.float32)
    labels = np.random.default_rng(1).integers(0, 10, batch)
    cut = {n: _train_step(net, x, labels, n) for n in (2, 3)}
    tape, grads = _train_step(net, x, labels, 1)
    for n, (tape_n, grads_n) in cut.items():
        assert [k for k in tape.outputs if not np.array_equal(tape[k], tape_n[k])] == [], n
        assert [(c, k) for c in tape.saved for k, v in tape.saved[c].items()
                if isinstance(v, np.ndarray) and not np.array_equal(v, tape_n.saved[c][k])] == [], n
        assert grads['env'].shape == x.shape and np.array_equal(grads['env'], grads_n['env'])
        assert [(c, k) for c in grads if c != 'env' for k in grads[c] if not np.array_equal(grads[c][k], grads_n[c][k])] == [], n


@pytest.mark.skipif(not hasattr(__import__('os'), 'fork'), reason='fork: POSIX only')
def test_forked_child_runs_threads():
    "A child forked after the engine made its thread pool (none of whose threads it has) runs in threads of its own."
    import os
    net = fill(Network.from_ini(model_path('LeNet.ini')), seed=1)
    x = np.random.default_rng(0).random((256, *net.input_dims), dtype=np.float32)
    a = engine.predict(net, x, threads=2)['softmax']
    pid = os.fork()
    if pid == 0:   # the child: exit 0 if it computes the same outputs (with the parent's pool, whose threads it lacks, it hangs)
        os._exit(0 if np.array_equal(engine.predict(net, x, threads=2)['softmax'], a) else 3)
    import signal, time
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done: break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
        pytest.fail('the forked child did not finish in 60 s: it waits on threads it does not have')
    assert os.WEXITSTATUS(status) == 0
