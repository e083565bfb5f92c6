import CISAL

/// The boundary to Intel ISA-L (libisal): the module's only unsafe Swift.
/// Matrices are row-major `[UInt8]`; shards live side by side in one buffer,
/// `stride` bytes apart, so that a block read off the wire is coded in place.
enum ISAL {
    /// The (`rows` × `columns`) generator: identity on top, Cauchy rows under it,
    /// so that every `columns` × `columns` submatrix is invertible.
    static func cauchyMatrix(rows: Int, columns: Int) -> [UInt8] {
        var matrix = [UInt8](repeating: 0, count: rows * columns)
        matrix.withUnsafeMutableBufferPointer { gf_gen_cauchy1_matrix($0.baseAddress, Int32(rows), Int32(columns)) }
        return matrix
    }

    /// The inverse of a `size` × `size` matrix, or nil when it is singular.
    static func invert(_ matrix: [UInt8], size: Int) -> [UInt8]? {
        var input = matrix
        var output = [UInt8](repeating: 0, count: size * size)
        let status = input.withUnsafeMutableBufferPointer { input in
            output.withUnsafeMutableBufferPointer { gf_invert_matrix(input.baseAddress, $0.baseAddress, Int32(size)) }
        }
        return status == 0 ? output : nil
    }

    static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 { gf_mul(a, b) }

    /// The expanded tables for coding `sources` inputs into `outputs` by `coefficients` (outputs × sources).
    static func tables(coefficients: [UInt8], sources: Int, outputs: Int) -> [UInt8] {
        var coefficients = coefficients
        var tables = [UInt8](repeating: 0, count: 32 * sources * outputs)
        coefficients.withUnsafeMutableBufferPointer { coefficients in
            tables.withUnsafeMutableBufferPointer { ec_init_tables(Int32(sources), Int32(outputs), coefficients.baseAddress, $0.baseAddress) }
        }
        return tables
    }

    /// `outputs` shards of `length` bytes, coded from the `sources` shards of
    /// `input` (shard i at byte i × `stride`), side by side in the result.
    static func code(tables: [UInt8], sources: Int, outputs: Int, input: [UInt8], stride: Int, length: Int) -> [UInt8] {
        precondition(length > 0 && stride >= length && input.count >= (sources - 1) * stride + length)
        var tables = tables
        var result = [UInt8](repeating: 0, count: outputs * length)
        input.withUnsafeBufferPointer { input in
            result.withUnsafeMutableBufferPointer { result in
                let source = UnsafeMutablePointer(mutating: input.baseAddress!)
                var sourcePointers: [UnsafeMutablePointer<UInt8>?] = (0..<sources).map { source + $0 * stride }
                var outputPointers: [UnsafeMutablePointer<UInt8>?] = (0..<outputs).map { result.baseAddress! + $0 * length }
                tables.withUnsafeMutableBufferPointer { tables in
                    sourcePointers.withUnsafeMutableBufferPointer { sourcePointers in
                        outputPointers.withUnsafeMutableBufferPointer { outputPointers in
                            ec_encode_data(Int32(length), Int32(sources), Int32(outputs), tables.baseAddress, sourcePointers.baseAddress, outputPointers.baseAddress)
                        }
                    }
                }
            }
        }
        return result
    }
}
