import CISAL

/// The boundary to Intel ISA-L (libisal): the module's only unsafe Swift.
/// Matrices are row-major `[UInt8]`; shards are coded where they lie (arrays of
/// their own, or slices of one block), and coded shards are arrays of their own.
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

    /// `outputs` shards of `length` bytes coded from `inputs` (each at least
    /// `length` bytes; a slice of a larger buffer is coded where it lies), each
    /// in an array of its own, written by the library without zeroing first.
    static func code(tables: [UInt8], outputs: Int, inputs: [ArraySlice<UInt8>], length: Int, capacity: Int? = nil) -> [[UInt8]] {
        precondition(length > 0 && inputs.allSatisfy { $0.count >= length })
        var tables = tables
        return withAddresses(of: inputs[...], collected: []) { sources in
            filled(outputs, length: length, capacity: max(capacity ?? length, length), collected: []) { outputPointers in
                var sourcePointers = sources
                var outputPointers = outputPointers
                tables.withUnsafeMutableBufferPointer { tables in
                    sourcePointers.withUnsafeMutableBufferPointer { sourcePointers in
                        outputPointers.withUnsafeMutableBufferPointer { outputPointers in
                            ec_encode_data(Int32(length), Int32(inputs.count), Int32(outputs), tables.baseAddress, sourcePointers.baseAddress, outputPointers.baseAddress)
                        }
                    }
                }
            }
        }
    }

    /// Runs `body` with the start of every input (the library only reads them).
    private static func withAddresses<R>(of inputs: ArraySlice<ArraySlice<UInt8>>, collected: [UnsafeMutablePointer<UInt8>?],
                                         _ body: ([UnsafeMutablePointer<UInt8>?]) -> R) -> R {
        guard let first = inputs.first else { return body(collected) }
        return first.withUnsafeBufferPointer { buffer in
            withAddresses(of: inputs.dropFirst(), collected: collected + [UnsafeMutablePointer(mutating: buffer.baseAddress!)], body)
        }
    }

    /// `count` arrays of `length` bytes, which `fill` (given their starts) must write whole.
    private static func filled(_ count: Int, length: Int, capacity: Int, collected: [UnsafeMutablePointer<UInt8>?],
                               _ fill: ([UnsafeMutablePointer<UInt8>?]) -> Void) -> [[UInt8]] {
        guard count > 0 else {
            fill(collected)
            return []
        }
        var rest: [[UInt8]] = []
        let first = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            rest = filled(count - 1, length: length, capacity: capacity, collected: collected + [buffer.baseAddress!], fill)
            initialized = length
        }
        return [first] + rest
    }
}
