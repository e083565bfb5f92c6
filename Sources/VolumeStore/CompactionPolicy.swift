/// Which volumes are worth compacting: pure, so that the rule is tested apart from the disk.
public enum CompactionPolicy {
    /// The volumes to compact now, most garbage first. A volume qualifies when its
    /// garbage is at least `garbageRatio` of its records; the one taking writes only
    /// when its garbage is that share of a whole volume (`volumeBytes`), so that a
    /// filling volume is not closed early over a few deletes. Damaged volumes never do.
    public static func candidates(_ volumes: [VolumeStore.VolumeSummary], garbageRatio: Double, volumeBytes: Int) -> [UInt32] {
        volumes.filter { volume in
            guard volume.readOnlyReason == nil, volume.garbageBytes > 0 else { return false }
            let base = volume.active ? max(volumeBytes, volume.recordBytes) : volume.recordBytes
            return Double(volume.garbageBytes) >= garbageRatio * Double(base)
        }
        .sorted { $0.garbageBytes > $1.garbageBytes }
        .map(\.number)
    }
}
