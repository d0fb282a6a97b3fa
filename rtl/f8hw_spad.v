// f8hw_spad: on-chip scratchpad of the f8hw accelerator (hand written, shipped with f8hw).
// Simple dual-port RAM: one synchronous read port (1-cycle latency, returns the old data
// when the same word is written in the same cycle), one write port with GRAN-bit lane enables.
// Equivalent to the lib.memory.Memory the Amaranth simulation model uses (spad="amaranth").
module f8hw_spad #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16,
    parameter integer ABITS = 4,
    parameter integer GRAN = 8
) (
    input  wire                    clk,
    input  wire [ABITS-1:0]        raddr,
    output reg  [WIDTH-1:0]        rdata,
    input  wire [ABITS-1:0]        waddr,
    input  wire [WIDTH-1:0]        wdata,
    input  wire [WIDTH/GRAN-1:0]   wen
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i;
`ifndef SYNTHESIS
    initial begin
        rdata = {WIDTH{1'b0}};
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
    end
`endif
    always @(posedge clk) begin
        rdata <= mem[raddr];
        for (i = 0; i < WIDTH / GRAN; i = i + 1)
            if (wen[i]) mem[waddr][i * GRAN +: GRAN] <= wdata[i * GRAN +: GRAN];
    end
endmodule
