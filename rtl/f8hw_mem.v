// f8hw_mem: plain Verilog memory of the sim-only top (hand written, shipped with f8hw).
// One synchronous read port (1-cycle latency), one write port.  Contents are zeroed,
// then loaded with $readmemh from the file named by plusarg +<INIT_ARG>=FILE (if given);
// when `dump` is first seen high, the contents are written with $writememh to the file
// named by plusarg +<DUMP_ARG>=FILE (if given).  Empty INIT_ARG / DUMP_ARG disable them.
module f8hw_mem #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16,
    parameter integer ABITS = 4,
    parameter INIT_ARG = "",
    parameter DUMP_ARG = ""
) (
    input  wire             clk,
    input  wire [ABITS-1:0] raddr,
    input  wire             ren,
    output reg  [WIDTH-1:0] rdata,
    input  wire [ABITS-1:0] waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire             wen,
    input  wire             dump
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [8*1024-1:0] fname;
    reg dumped;
    integer i;
    initial begin
        dumped = 1'b0;
        rdata = {WIDTH{1'b0}};
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
        if (INIT_ARG != "") begin
            if ($value$plusargs({INIT_ARG, "=%s"}, fname)) $readmemh(fname, mem);
        end
    end
    always @(posedge clk) begin
        if (ren) rdata <= mem[raddr];
        if (wen) mem[waddr] <= wdata;
        if (dump && !dumped) begin
            dumped <= 1'b1;
            if (DUMP_ARG != "") begin
                if ($value$plusargs({DUMP_ARG, "=%s"}, fname)) $writememh(fname, mem);
            end
        end
    end
endmodule
