"""Network namespaces for partition tests: a bridge in the root namespace and one
namespace per node joined to it by a veth pair; cutting a node off takes its veth
down. Names and the subnet derive from a tag (the pid by default) so parallel runs
do not collide, and `remove()` deletes everything (it is safe to call twice).

    net = Network(nodes=3)          # kvb<tag>, namespaces kv<tag>-<i>, 10.77.X.0/24
    net.node_ip(0), net.bridge_ip   # 10.77.X.10, 10.77.X.1
    net.prefix(0)                   # ["ip", "netns", "exec", "kv<tag>-0"]
    net.cut(0); net.heal(0)
    net.remove()
"""
import os
import subprocess


def _ip(*args, check=True):
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def available():
    """(True, "") if we are root and can create a namespace, else (False, why)."""
    if os.geteuid() != 0:
        return False, "not root"
    name = f"kvprobe{os.getpid() % 100000}"
    try:
        result = _ip("netns", "add", name, check=False)
    except FileNotFoundError:
        return False, "no `ip` command"
    if result.returncode != 0:
        return False, f"ip netns add: {result.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return True, ""


def _used_subnets():
    out = _ip("-o", "-4", "addr", "show", check=False).stdout
    used = set()
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            address = words[words.index("inet") + 1]
            used.add(".".join(address.split(".")[:3]))
    return used


class Network:
    def __init__(self, nodes, tag=None):
        self.tag = str(tag if tag is not None else os.getpid() % 100000)
        self.bridge = f"kvb{self.tag}"
        used = _used_subnets()
        third = int(self.tag) % 250 + 1
        for _ in range(250):
            if f"10.77.{third}" not in used:
                break
            third = third % 250 + 1
        else:
            raise RuntimeError("no free 10.77.X.0/24 subnet")
        self.subnet = f"10.77.{third}"
        self.bridge_ip = f"{self.subnet}.1"
        self.nodes = nodes
        self.created_namespaces = []
        self.created_links = []
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self.created_links.append(self.bridge)
            _ip("addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(nodes):
                self._add_node(i)
        except BaseException:
            self.remove()
            raise

    def namespace(self, i):
        return f"kv{self.tag}-{i}"

    def host_veth(self, i):
        return f"kv{self.tag}h{i}"

    def node_ip(self, i):
        return f"{self.subnet}.{10 + i}"

    def prefix(self, i):
        return ["ip", "netns", "exec", self.namespace(i)]

    def _add_node(self, i):
        ns, host, peer = self.namespace(i), self.host_veth(i), f"kv{self.tag}n{i}"
        _ip("netns", "add", ns)
        self.created_namespaces.append(ns)
        _ip("link", "add", host, "type", "veth", "peer", "name", peer)
        self.created_links.append(host)
        _ip("link", "set", peer, "netns", ns)
        _ip("link", "set", host, "master", self.bridge)
        _ip("link", "set", host, "up")
        _ip("-n", ns, "addr", "add", f"{self.node_ip(i)}/24", "dev", peer)
        _ip("-n", ns, "link", "set", peer, "up")
        _ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, i):
        """Partition node i from everything (its veth goes down; TCP peers just stall)."""
        _ip("link", "set", self.host_veth(i), "down")

    def heal(self, i):
        _ip("link", "set", self.host_veth(i), "up")

    def remove(self):
        """Delete the namespaces (which deletes their veth ends, and so the pairs) and the bridge."""
        errors = []
        for ns in reversed(self.created_namespaces):
            result = _ip("netns", "del", ns, check=False)
            if result.returncode != 0 and "No such file" not in result.stderr:
                errors.append(result.stderr.strip())
        self.created_namespaces = []
        for link in reversed(self.created_links):
            _ip("link", "del", link, check=False)  # already gone with its namespace peer, usually
        self.created_links = []
        return errors


def tcp_reachable(from_prefix, to_prefix, ip, port=47999, timeout=1.0):
    """True if a TCP listener on ip:port in the namespace `to_prefix` runs in accepts a
    connection from the namespace `from_prefix` runs in ([] = the root namespace).
    (There may be no `ping` on the machine; python3 is always there.)"""
    import sys
    listener = subprocess.Popen(list(to_prefix) + [sys.executable, "-c", (
        "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(({ip!r}, {port})); s.listen(); print('up', flush=True); s.settimeout({timeout + 2}); "
        "c,_=s.accept(); c.sendall(b'hi')")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if listener.stdout.readline().strip() != b"up":
            return False
        probe = subprocess.run(list(from_prefix) + [sys.executable, "-c", (
            f"import socket; c=socket.create_connection(({ip!r}, {port}), timeout={timeout}); "
            f"c.settimeout({timeout}); assert c.recv(2) == b'hi'")], capture_output=True)
        return probe.returncode == 0
    finally:
        listener.kill()
        listener.wait()
