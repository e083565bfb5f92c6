import CIProtoCore

extension Handlers {
    /// The index of the worker whose thread is running (0 ..< workers), or nil
    /// outside every server's workers. A handler and the reply barrier that
    /// follows it run on the same worker's thread, so a service can stage what
    /// a handler did in a per-worker slot and make it durable (or replicate it)
    /// in the barrier, without a lock between workers.
    public static var currentWorker: Int? {
        let index = iproto_current_worker()
        return index < 0 ? nil : Int(index)
    }
}
